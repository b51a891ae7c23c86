import importlib
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_config

from lcpfn import LCPFN, CheckpointError
from lcpfn import checkpoint as ckpt
from lcpfn.bar_distribution import BarDistribution
from lcpfn.model import PFN, ModelConfig
from lcpfn.train import train


def _save(tmp_path):
    torch.manual_seed(0)
    model = PFN(ModelConfig(num_bins=10, d_model=16, n_layers=1, n_heads=2, d_ff=32))
    bar = BarDistribution(torch.linspace(0, 1, 11))
    ckpt.save_model(tmp_path, model, bar, prior={"name": "reference"}, extra={"step": 3})
    return model, bar


def test__checkpoint__round_trip_preserves_data(tmp_path):
    model, bar = _save(tmp_path)
    loaded, lbar, config = ckpt.load_model(tmp_path)
    assert loaded.config == model.config and config["step"] == 3
    assert torch.equal(lbar.borders, bar.borders)
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    x = torch.arange(1.0, 6.0)[None]
    assert torch.equal(model.eval()(x, x / 10, x + 5), loaded(x, x / 10, x + 5))


def test__checkpoint__is_not_a_pickle(tmp_path):
    _save(tmp_path)
    head = (tmp_path / ckpt.WEIGHTS_FILE).read_bytes()[:2]
    assert head != b"\x80\x02" and not (tmp_path / ckpt.WEIGHTS_FILE).read_bytes().startswith(b"PK")


@pytest.mark.parametrize(
    "damage, match",
    [
        (lambda d: (d / ckpt.WEIGHTS_FILE).unlink(), "missing"),
        (lambda d: (d / ckpt.CONFIG_FILE).unlink(), "missing"),
        (lambda d: (d / ckpt.WEIGHTS_FILE).write_bytes(b"garbage" * 10), "corrupt"),
        (lambda d: (d / ckpt.WEIGHTS_FILE).write_bytes((d / ckpt.WEIGHTS_FILE).read_bytes()[:-100]), "corrupt"),
        (lambda d: (d / ckpt.CONFIG_FILE).write_text("{not json"), "not valid JSON"),
        (lambda d: (d / ckpt.CONFIG_FILE).write_text("[]"), "JSON object"),
        (lambda d: (d / ckpt.CONFIG_FILE).write_text('{"format": "other"}'), "not an lcpfn"),
        (lambda d: _edit_config(d, model={"d_model": 32}), "does not match"),
        (lambda d: _edit_config(d, model={"bogus": 1}), "invalid 'model'"),
        (lambda d: _edit_config(d, format_version=99), "newer"),
        (lambda d: _edit_config(d, budget=0), "invalid 'budget' 0"),
        (lambda d: _edit_config(d, budget=10_000), "invalid 'budget' 10000"),
        (lambda d: _edit_config(d, budget="52"), "invalid 'budget' '52'"),
    ],
)
def test__checkpoint__damaged_files_raise_checkpoint_error(tmp_path, damage, match):
    _save(tmp_path)
    damage(tmp_path)
    with pytest.raises(CheckpointError, match=match):
        LCPFN.from_pretrained(tmp_path)


def _edit_config(d, **changes):
    cfg = json.loads((d / ckpt.CONFIG_FILE).read_text())
    for k, v in changes.items():
        if isinstance(v, dict):
            cfg[k] = {**cfg[k], **v} if k != "model" or "bogus" not in v else {**cfg[k], **v}
        else:
            cfg[k] = v
    (d / ckpt.CONFIG_FILE).write_text(json.dumps(cfg))


def _write_raw_config(d, text: str) -> None:
    (d / ckpt.CONFIG_FILE).write_text(text)


def _edit_tensors(d, **changes):
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(d / ckpt.WEIGHTS_FILE))
    for k, fn in changes.items():
        key = k.replace("__", ".")
        tensors[key] = fn(tensors[key])
    save_file(tensors, str(d / ckpt.WEIGHTS_FILE))


def _with_nan(t):
    t = t.clone()
    t.view(-1)[0] = float("nan")
    return t


@pytest.mark.parametrize(
    "damage, match",
    [
        (lambda d: _edit_config(d, model={"n_heads": 0}), "n_heads must be at least 1 but got 0"),
        (lambda d: _edit_config(d, model={"d_model": 10**7}), "d_model must be at most 16384 but got 10000000"),
        (lambda d: _edit_config(d, model={"n_layers": 10**9}), "n_layers must be at most 256"),
        (lambda d: _edit_config(d, model={"num_bins": 10**6}), "num_bins must be at most 10000"),
        (lambda d: _edit_config(d, model={"seq_len": 2**62}), "seq_len must be at most 100000"),
        (lambda d: _edit_config(d, model={"d_model": 8192, "n_heads": 8, "d_ff": 65536, "n_layers": 100}),
         "parameters, more than the 1,000,000,000"),
        (lambda d: _edit_config(d, model={"num_bins": "10"}), "num_bins must be an integer but got '10'"),
        (lambda d: _edit_config(d, model={"d_model": True}), "d_model must be an integer but got True"),
        (lambda d: _edit_config(d, model={"d_model": 16.0}), "d_model must be an integer but got 16.0"),
        (lambda d: _edit_config(d, model={"dropout": [0.1]}), "dropout must be a number"),
        (lambda d: _edit_config(d, model={"dropout": None}), "dropout must be a number"),
        (lambda d: _edit_config(d, model={"d_model": [[[[1]]]]}), "d_model must be an integer"),
        (lambda d: _edit_config(d, model=None), "invalid 'model' section: None"),
        (lambda d: _edit_config(d, format_version="1"), "invalid 'format_version' '1'"),
        (lambda d: _edit_config(d, format_version=None), "invalid 'format_version' None"),
        (lambda d: _edit_config(d, budget=[2]), "invalid 'budget' \\[2\\]"),
        # deeper than the JSON parser recurses, an integer of more digits than Python converts
        (lambda d: _write_raw_config(d, '{"format": "lcpfn-checkpoint", "prior": ' + "[" * 10**5 + "]" * 10**5 + "}"),
         "not valid JSON"),
        (lambda d: _write_raw_config(d, '{"format": "lcpfn-checkpoint", "budget": 1' + "0" * 5000 + "}"),
         "not valid JSON"),
        (lambda d: _write_raw_config(d, '{"format": "lcpfn-checkpoint", "pad": "' + "x" * 1_000_001 + '"}'),
         "more than the 1,000,000 a config may have"),
        # weights: non-finite values and borders, foreign tensors, integer tensors
        (lambda d: _edit_tensors(d, model__head__weight=_with_nan), "non-finite values .* 'model.head.weight'"),
        (lambda d: _edit_tensors(d, model__ln_f__bias=lambda t: t + float("inf")), "non-finite .* 'model.ln_f.bias'"),
        (lambda d: _edit_tensors(d, bar__borders=_with_nan), "non-finite .* 'bar.borders'"),
        (lambda d: _edit_tensors(d, bar__borders=lambda t: torch.cat([t[:-1], torch.tensor([float("inf")])])),
         "non-finite .* 'bar.borders'"),
        (lambda d: _edit_tensors(d, model__head__bias=lambda t: t.long()), "not floating point"),
        (lambda d: _edit_tensors(d, model__head__bias=lambda t: t[:-1]), "does not match its config .*model.head.bias"),
    ],
)
def test__checkpoint__bad_config_values_and_weights_raise_checkpoint_error(tmp_path, damage, match):
    _save(tmp_path)
    damage(tmp_path)
    with pytest.raises(CheckpointError, match=match):
        LCPFN.from_pretrained(tmp_path)


@pytest.mark.parametrize(
    "config",
    [ModelConfig(), ModelConfig(head_hidden=64, value_hidden=8),
     ModelConfig(d_model=16, n_heads=2, n_layers=1, d_ff=8)],
)
def test__model_config__count_parameters_is_the_models(config):
    from dataclasses import asdict

    model = PFN(config)
    assert ModelConfig.count_parameters(asdict(config)) == sum(p.numel() for p in model.parameters())


def test__checkpoint__loaded_weights_are_the_saved_ones_in_float32(tmp_path):
    model, _ = _save(tmp_path)
    _edit_tensors(tmp_path, model__head__weight=lambda t: t.double())  # a float64 tensor is read as float32
    loaded, _, _ = ckpt.load_model(tmp_path)
    assert loaded.head.weight.dtype == torch.float32 and torch.equal(loaded.head.weight, model.head.weight)
    assert all(p.device.type == "cpu" for p in loaded.parameters())


def test__checkpoint__missing_directory(tmp_path):
    with pytest.raises(Exception, match="neither a shipped model"):
        LCPFN.from_pretrained(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="does not exist"):
        ckpt.load_model(tmp_path / "nope")


def test__checkpoint__failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    model, bar = _save(tmp_path)
    before = (tmp_path / ckpt.WEIGHTS_FILE).read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        ckpt.save_model(tmp_path, model, bar, prior={"name": "reference"})
    assert (tmp_path / ckpt.WEIGHTS_FILE).read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [ckpt.CONFIG_FILE, ckpt.WEIGHTS_FILE]


def test__checkpoint__files_get_the_usual_permissions_and_importing_sets_no_umask(tmp_path, monkeypatch):
    def no_umask(mask):
        raise AssertionError("os.umask called")

    monkeypatch.setattr(os, "umask", no_umask)
    importlib.reload(ckpt)  # importing has no side effects (it used to read the umask by setting it)
    monkeypatch.undo()
    old = os.umask(0o027)
    try:
        _save(tmp_path / "model")
        train(tiny_config(tmp_path / "run", steps=1, border_curves=200), progress=False)
    finally:
        os.umask(old)
    run_checkpoint = ckpt.latest_checkpoint(tmp_path / "run")
    for f in [tmp_path / "model" / ckpt.WEIGHTS_FILE, run_checkpoint / ckpt.WEIGHTS_FILE,
              tmp_path / "run" / ckpt.STATE_JSON]:
        assert stat.S_IMODE(f.stat().st_mode) == 0o640, f
    assert stat.S_IMODE(run_checkpoint.stat().st_mode) == 0o750


def test__training_run__keeps_one_checkpoint_that_a_pointer_names(tmp_path):
    out = tmp_path / "run"
    train(tiny_config(out, steps=4, checkpoint_every=1, border_curves=200), progress=False)
    assert sorted(p.name for p in out.iterdir()) == [ckpt.CHECKPOINTS_DIR, ckpt.STATE_JSON]
    pointer = json.loads((out / ckpt.STATE_JSON).read_text())
    assert pointer["checkpoint"] == "checkpoints/step-0000004" and pointer["final"] is True
    assert [p.name for p in (out / ckpt.CHECKPOINTS_DIR).iterdir()] == ["step-0000004"]
    files = sorted(p.name for p in (out / pointer["checkpoint"]).iterdir())
    assert files == sorted([ckpt.CONFIG_FILE, ckpt.WEIGHTS_FILE, ckpt.STATE_FILE, ckpt.STATE_JSON])
    # the run directory and its checkpoint directory both load (the README's `from_pretrained("runs/mine")`)
    a, b = LCPFN.from_pretrained(out), LCPFN.from_pretrained(out / pointer["checkpoint"])
    assert a.config["step"] == 4 and all(torch.equal(x, y) for x, y in zip(a.model.parameters(), b.model.parameters()))


def test__training_run__resume_removes_stale_entries_but_nothing_it_did_not_write(tmp_path):
    out = tmp_path / "run"
    train(tiny_config(out, steps=4, border_curves=200), stop_at_step=2, progress=False)
    root = out / ckpt.CHECKPOINTS_DIR
    (root / ".tmp-step-0000003-1-abc").mkdir()
    (root / ".tmp-step-0000003-1-abc" / ckpt.WEIGHTS_FILE).write_bytes(b"half")
    shutil.copytree(root / "step-0000002", root / "step-0000003")  # renamed, but the pointer never moved
    (out / ".tmp-training_state.json-1-abc").write_text("{")
    (root / "notes.txt").write_text("mine")
    (out / "log.txt").write_text("mine")
    assert train(tiny_config(out, steps=4, border_curves=200), resume=True, progress=False).finished
    assert sorted(p.name for p in root.iterdir()) == ["notes.txt", "step-0000004"]
    assert sorted(p.name for p in out.iterdir()) == [ckpt.CHECKPOINTS_DIR, "log.txt", ckpt.STATE_JSON]


def test__training_run__pointer_outside_checkpoints_is_refused(tmp_path):
    out = tmp_path / "run"
    train(tiny_config(out, steps=1, border_curves=200), progress=False)
    (out / ckpt.STATE_JSON).write_text(json.dumps({"checkpoint": "../elsewhere"}))
    with pytest.raises(CheckpointError, match="invalid checkpoint '../elsewhere'"):
        ckpt.load_model(out)


def test__training_run__old_single_directory_layout_still_loads_and_resumes(tmp_path):
    """Runs written before checkpoints had their own directories: files in OUT_DIR itself."""
    out = tmp_path / "run"
    train(tiny_config(out, steps=4, border_curves=200), stop_at_step=2, progress=False)
    checkpoint = ckpt.latest_checkpoint(out)
    for f in checkpoint.iterdir():
        shutil.move(f, out / f.name)
    shutil.rmtree(out / ckpt.CHECKPOINTS_DIR)
    assert ckpt.load_model(out)[2]["step"] == 2
    assert train(tiny_config(out, steps=4, border_curves=200), resume=True, progress=False).finished
    assert sorted(p.name for p in out.iterdir()) == [ckpt.CHECKPOINTS_DIR, ckpt.STATE_JSON]
    assert ckpt.load_model(out)[2]["step"] == 4


# Run in a subprocess: train a tiny model from scratch (checkpoints at steps 2 and 4), then again in
# forked children, the k-th of which is killed (os._exit(9), no clean-up) just before the k-th file
# operation of lcpfn.checkpoint, for every k; then resume each in a fresh child and report what
# the directory held after the kill and after the resume.
_CRASH_WORKER = r"""
import hashlib, json, os, sys, traceback
from pathlib import Path
import lcpfn.checkpoint as ckpt
from lcpfn.train import TrainConfig, train

root = Path(sys.argv[1])
CONFIG = dict(seq_len=20, num_bins=10, d_model=8, n_layers=1, n_heads=2, d_ff=16, batch_size=4, border_curves=200,
              steps=4, checkpoint_every=2, warmup_steps=1, threads=1, device="cpu")
OPS = {"open", "write", "fsync", "close", "replace", "rename", "mkdir", "unlink", "rmdir"}
real_os = os


class KillAt:
    def __init__(self, at):
        self.at, self.count = at, 0

    def __getattr__(self, name):
        f = getattr(real_os, name)
        if name not in OPS:
            return f

        def op(*args, **kwargs):
            self.count += 1
            if self.count == self.at:
                real_os._exit(9)
            return f(*args, **kwargs)

        return op


def in_child(fn):
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            fn()
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def run(out, kill_at=0, resume=False):
    proxy = KillAt(kill_at)
    ckpt.os = proxy
    train(TrainConfig(out_dir=str(out), **CONFIG), resume=resume, progress=False)
    ckpt.os = real_os
    (Path(out).parent / "ops").write_text(str(proxy.count))


def weights(out):  # the tensors' bytes (the file's header orders its metadata differently each time)
    from safetensors.numpy import load_file

    tensors = load_file(ckpt.latest_checkpoint(out) / ckpt.WEIGHTS_FILE)
    return hashlib.sha256(b"".join(k.encode() + tensors[k].tobytes() for k in sorted(tensors))).hexdigest()


def tree(out):
    return sorted(str(p.relative_to(out)) for p in Path(out).rglob("*"))


def committed(out):
    # what a reader sees: no run, or a complete checkpoint
    try:
        found = ckpt.read_run_state(out)
    except Exception as exc:
        return f"unreadable: {exc}"
    if found is None:
        return None
    names = sorted(p.name for p in found[0].iterdir())
    return {"step": found[1]["step"], "files": names}


(root / "straight").mkdir()
run(root / "straight" / "out")  # here, not in a child: the children start warm (one thread, so fork is safe)
total = int((root / "straight" / "ops").read_text())
straight = root / "straight" / "out"
print(json.dumps({"total": total, "weights": weights(straight), "tree": tree(straight)}))
for k in range(1, total + 1):
    (root / str(k)).mkdir()
    out = root / str(k) / "out"
    killed = in_child(lambda: run(out, kill_at=k))
    after_kill = committed(out)
    resumed = in_child(lambda: run(out, resume=True))
    print(json.dumps({"k": k, "killed": killed, "after_kill": after_kill, "resumed": resumed,
                      "weights": weights(out) if resumed == 0 else None, "tree": tree(out)}))
"""


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "fork"), reason="kills forked children")
def test__training_run__killed_at_any_file_operation_resumes_to_the_same_weights(tmp_path):
    proc = subprocess.run([sys.executable, "-c", _CRASH_WORKER, str(tmp_path)], capture_output=True, text=True,
                          timeout=900, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    straight, runs = lines[0], lines[1:]
    assert straight["total"] > 40 and len(runs) == straight["total"]  # two checkpoints' worth of operations
    complete = sorted([ckpt.CONFIG_FILE, ckpt.STATE_FILE, ckpt.STATE_JSON, ckpt.WEIGHTS_FILE])
    for run in runs:
        assert run["killed"] == 9, run
        # a reader after the kill sees no run or a complete checkpoint, never a partial one
        assert run["after_kill"] is None or run["after_kill"]["files"] == complete, run
        assert run["resumed"] == 0 and run["weights"] == straight["weights"], run
        assert run["tree"] == straight["tree"], run  # nothing temporary or stale survives the resume
    assert {r["after_kill"]["step"] for r in runs if r["after_kill"]} == {2, 4}  # kills before and after each commit


def test__shipped_models__have_weights_config_and_card():
    import importlib.resources

    root = importlib.resources.files("lcpfn.models")
    for name in ("default", "reference"):
        for f in (ckpt.WEIGHTS_FILE, ckpt.CONFIG_FILE, "README.md"):
            assert (root / name / f).is_file(), f"{name}/{f}"
    # the default model is trained on the extended prior, the reference model on the paper's
    for name, prior in (("default", "extended"), ("reference", "reference")):
        config = json.loads((root / name / ckpt.CONFIG_FILE).read_text())
        assert config["prior"]["name"] == prior and config["final"] is True
    # the default model's outer bins have short tails (borders -0.5 / 1.5, not the extreme prior
    # samples), so the ~1 % of mass it gives to a collapse cannot drag the mean far away
    _, bar, _ = ckpt.load_model(root / "default")
    assert bar.borders[0].item() == -0.5 and bar.borders[-1].item() == 1.5
    # examples/curve.csv's first 20 epochs: with the extreme borders the mean fell below the 25 %
    # quantile at 70 % of the future epochs (by up to 0.027)
    example = Path(__file__).resolve().parents[1] / "examples" / "curve.csv"
    curve = np.loadtxt(example, delimiter=",", skiprows=1)[:20, 1]
    fc = LCPFN.from_pretrained("default").predict(curve, max_epochs=100)
    assert np.all(fc.mean() > fc.quantile(0.25)) and np.all(fc.mean() < fc.quantile(0.95))
