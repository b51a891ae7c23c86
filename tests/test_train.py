import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import TINY, tiny_config

from lcpfn import checkpoint as ckpt
from lcpfn.bar_distribution import BarDistribution, borders_from_samples
from lcpfn.errors import InputError
from lcpfn.model import PFN, ModelConfig
from lcpfn.priors import ReferencePrior
from lcpfn.train import TrainConfig, train


def _weights(out_dir):
    return ckpt.read_tensors(ckpt.latest_checkpoint(out_dir) / ckpt.WEIGHTS_FILE)


def test__model__overfits_one_batch():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    batch = ReferencePrior().sample(8, generator=g)
    bar = BarDistribution(borders_from_samples(ReferencePrior().sample(500, generator=g).values, 50))
    model = PFN(ModelConfig(num_bins=50, d_model=32, n_layers=2, n_heads=2, d_ff=64))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x, y = batch.epochs, batch.values

    def loss_fn():
        return bar(model(x[:, :30], y[:, :30], x[:, 30:]), y[:, 30:]).mean()

    first = loss_fn().item()
    for _ in range(150):
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
    # 50 equally likely bins: a blind model scores about log(50 * mean bin width density) ~ 0;
    # memorising one batch must push the NLL far below where it started.
    assert loss.item() < first - 1.5


def test__model__queries_never_see_other_queries():
    torch.manual_seed(0)
    model = PFN(ModelConfig(num_bins=10, d_model=16, n_layers=2, n_heads=2, d_ff=32)).eval()
    ctx_t = torch.arange(1.0, 6.0)[None]
    ctx_y = torch.rand(1, 5)
    q1 = model(ctx_t, ctx_y, torch.tensor([[7.0, 9.0]]))
    q2 = model(ctx_t, ctx_y, torch.tensor([[7.0, 50.0, 60.0]]))
    assert torch.allclose(q1[0, 0], q2[0, 0], atol=1e-6)


def test__train__writes_a_loadable_checkpoint(tmp_path):
    result = train(tiny_config(tmp_path, steps=6), progress=False)
    assert result.finished and result.step == 6 and result.curves_seen == 6 * 16
    model, bar, config = ckpt.load_model(tmp_path)
    assert config["step"] == 6 and config["prior"]["name"] == "reference"
    assert bar.num_bins == 50 and model.config.d_model == 32


@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test__train__resume_continues_exactly(tmp_path, dropout):
    straight, split = tmp_path / "straight", tmp_path / "split"
    train(tiny_config(straight, steps=10, dropout=dropout), progress=False)
    first = train(tiny_config(split, steps=10, dropout=dropout), stop_at_step=4, progress=False)
    assert not first.finished and first.step == 4 and first.stop_reason == "stop_at_step"
    second = train(tiny_config(split, steps=10, dropout=dropout), resume=True, progress=False)
    assert second.finished and second.step == 10
    a, b = _weights(straight), _weights(split)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test__train__leaves_global_rng_threads_and_signal_handlers_as_they_were(tmp_path):
    import signal

    torch.manual_seed(123)
    rng, threads = torch.get_rng_state(), torch.get_num_threads()
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    config = dict(steps=5, dropout=0.1, threads=1)  # the same threads in every session: same float sums
    train(tiny_config(tmp_path / "a", **config), stop_at_step=2, progress=False)
    train(tiny_config(tmp_path / "a", **config), resume=True, progress=False)
    assert torch.equal(torch.get_rng_state(), rng) and torch.get_num_threads() == threads
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers
    # and the caller's global seed does not change the run
    torch.manual_seed(999)
    train(tiny_config(tmp_path / "b", **config), stop_at_step=3, progress=False)
    train(tiny_config(tmp_path / "b", **config), resume=True, progress=False)
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test__train__config_is_importable_without_torch():
    code = "import sys; from lcpfn.config import TrainConfig; print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "False", proc.stderr


def test__model__mlp_head_and_value_encoder_round_trip(tmp_path):
    train(tiny_config(tmp_path, steps=3, head_hidden=24, value_hidden=8), progress=False)
    model, _, config = ckpt.load_model(tmp_path)
    assert config["model"]["head_hidden"] == 24 and config["model"]["value_hidden"] == 8
    assert isinstance(model.head, torch.nn.Sequential) and model.head[0].out_features == 24
    assert isinstance(model.value_encoder, torch.nn.Sequential) and model.value_encoder[0].out_features == 8
    with pytest.raises(InputError, match="head_hidden must be at least 0 .* got -1"):
        TrainConfig(out_dir="x", head_hidden=-1)


def test__checkpoint__written_before_mlp_options_still_loads(tmp_path):
    """Configs and run states saved before ``head_hidden``/``value_hidden`` existed mean 0 (linear)."""
    train(tiny_config(tmp_path, steps=4), stop_at_step=2, progress=False)
    checkpoint = ckpt.latest_checkpoint(tmp_path)
    for name, section in ((ckpt.CONFIG_FILE, "model"), (ckpt.STATE_JSON, "config")):
        data = json.loads((checkpoint / name).read_text())
        for key in ("head_hidden", "value_hidden"):
            del data[section][key]
        (checkpoint / name).write_text(json.dumps(data))
    model, _, _ = ckpt.load_model(tmp_path)
    assert isinstance(model.head, torch.nn.Linear)
    assert train(tiny_config(tmp_path, steps=4), resume=True, progress=False).finished


def test__train__init_from_starts_from_another_runs_weights_and_borders(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    train(tiny_config(first, steps=3), progress=False)
    start = train(tiny_config(second, steps=5, init_from=str(first), prior="extended"), stop_at_step=0,
                  progress=False)
    assert start.step == 0
    a, b = _weights(first), _weights(second)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert train(tiny_config(second, steps=5, init_from=str(first), prior="extended"), resume=True,
                 progress=False).finished
    with pytest.raises(InputError, match=r"d_model=16 \(checkpoint has 32\)"):
        train(tiny_config(tmp_path / "third", d_model=16, init_from=str(first)), progress=False)
    with pytest.raises(InputError, match="init_from: .* does not exist"):
        train(tiny_config(tmp_path / "fourth", init_from=str(tmp_path / "missing")), progress=False)


def test__train__refuses_to_overwrite_without_resume(tmp_path):
    train(tiny_config(tmp_path, steps=2), progress=False)
    with pytest.raises(InputError, match="resume"):
        train(tiny_config(tmp_path, steps=2), progress=False)


def test__train__resume_with_changed_settings_names_them(tmp_path):
    train(tiny_config(tmp_path, steps=4), stop_at_step=2, progress=False)
    with pytest.raises(InputError, match="lr=0.5"):
        train(tiny_config(tmp_path, steps=4, lr=0.5), resume=True, progress=False)


def test__train__bad_config_is_rejected():
    with pytest.raises(InputError, match="steps"):
        TrainConfig(out_dir="x", steps=0)
    with pytest.raises(InputError, match="divisible"):
        TrainConfig(out_dir="x", d_model=30, n_heads=4)
    with pytest.raises(InputError, match="precision"):
        TrainConfig(out_dir="x", precision="fp8")


def test__train__prior_settings_reach_the_prior_and_the_checkpoint(tmp_path):
    config = tiny_config(tmp_path, steps=2, prior="extended",
                         prior_settings={"p_step": 0.5, "step_width_range": (0.05, 0.3)})
    assert config.prior_settings == {"p_step": 0.5, "step_width_range": [0.05, 0.3]}  # the JSON form
    assert config.make_prior().step_width_range == (0.05, 0.3)
    train(config, stop_at_step=1, progress=False)
    _, _, meta = ckpt.load_model(tmp_path)
    assert meta["prior"]["p_step"] == 0.5 and meta["prior"]["step_width_range"] == [0.05, 0.3]
    # the same settings resume (tuples and lists alike); others are named
    train(tiny_config(tmp_path, steps=2, prior="extended",
                      prior_settings={"p_step": 0.5, "step_width_range": [0.05, 0.3]}), resume=True, progress=False)
    with pytest.raises(InputError, match="prior_settings"):
        train(tiny_config(tmp_path, steps=2, prior="extended", prior_settings={"p_step": 0.4}), resume=True,
              progress=False)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(prior="extended", prior_settings={"p_nope": 1}), "has no settings \\['p_nope'\\]"),
        (dict(prior="extended", prior_settings={"p_step": 2.0}), "prior 'extended': p_step must be a probability"),
        (dict(prior="extended", prior_settings={"p_step": float("nan")}), "finite JSON values"),
        (dict(prior="extended", prior_settings=[("p_step", 0.1)]), "must be a mapping"),
        (dict(prior="nope"), "unknown prior 'nope'"),
    ],
)
def test__train__bad_prior_settings_are_named(kwargs, message):
    with pytest.raises(InputError, match=message):
        TrainConfig(out_dir="x", **kwargs)


def test__lr_schedule__warms_up_then_decays_to_min_lr():
    c = TrainConfig(out_dir="x", steps=100, warmup_steps=10, lr=1e-3, min_lr=1e-5)
    assert c.lr_at(0) == pytest.approx(1e-4)
    assert c.lr_at(9) == pytest.approx(1e-3)
    assert c.lr_at(100) == pytest.approx(1e-5) and 1e-5 < c.lr_at(99) < 2e-5
    assert all(c.lr_at(s) >= c.lr_at(s + 1) for s in range(10, 99))


@pytest.mark.slow
def test__train__ddp_with_two_gloo_processes(tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
        "-m", "lcpfn.cli", "train", "--out-dir", str(out), "--steps", "6", "--batch-size", "16",
        "--num-bins", "50", "--d-model", "32", "--n-layers", "2", "--n-heads", "2", "--d-ff", "64",
        "--border-curves", "2000", "--warmup-steps", "2", "--checkpoint-every", "3", "--device", "cpu",
        "--no-progress",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    checkpoint, meta = ckpt.read_run_state(out)
    assert meta["world_size"] == 2 and meta["step"] == 6 and meta["curves_seen"] == 96
    state = ckpt.read_tensors(checkpoint / ckpt.STATE_FILE)
    assert not torch.equal(state["rng.0"], state["rng.1"])  # each rank draws its own curves
    model, _, _ = ckpt.load_model(out)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test__train__budget_trains_on_runs_of_that_length(tmp_path, monkeypatch):
    """``budget``: prior curves of ``budget`` epochs, queries up to it, and the checkpoint's native length."""
    from lcpfn import LCPFN
    from lcpfn.priors import ExtendedPrior

    lengths = []
    sample = ExtendedPrior.sample

    def spy(self, batch_size, *, seq_len=100, **kw):
        lengths.append(seq_len)
        return sample(self, batch_size, seq_len=seq_len, **kw)

    monkeypatch.setattr(ExtendedPrior, "sample", spy)
    result = train(tiny_config(tmp_path, steps=3, prior="extended", budget=20), progress=False)
    assert result.finished and lengths and set(lengths) == {20}  # the border curves and every batch
    model, _, config = ckpt.load_model(tmp_path)
    assert config["budget"] == 20 and config["train_config"]["budget"] == 20
    assert model.config.seq_len == TINY["seq_len"]  # epochs are still embedded as t / seq_len

    lc = LCPFN.from_pretrained(tmp_path)
    assert lc.native_length == 20 and "native_length=20" in repr(lc)
    seen = []
    features = lc.model.features  # what predict runs (the head is applied later, per marginal)

    def spy_features(c, y, q):
        seen.append((c.max().item(), q.max().item()))
        return features(c, y, q)

    monkeypatch.setattr(lc.model, "features", spy_features)
    fc = lc.predict([0.2, 0.3, 0.35, 0.4, 0.42, 0.45, 0.46, 0.47, 0.48, 0.49], max_epochs=40)
    assert fc.median().shape == (30,) and torch.isfinite(torch.as_tensor(fc.median())).all()
    assert seen and max(q for _, q in seen) <= 20 + 1e-6  # a 40-epoch run is read as a 20-epoch one
    # a run resumed with another budget is refused, naming it
    with pytest.raises(InputError, match=r"budget=30 \(run has 20\)"):
        train(tiny_config(tmp_path, steps=4, prior="extended", budget=30), resume=True, progress=False)


@pytest.mark.parametrize("budget", [1, 0, 10_000, 2.5, True, "20"])
def test__train__bad_budget_is_rejected(budget):
    with pytest.raises(InputError, match="budget must be an integer"):
        TrainConfig(out_dir="x", budget=budget)


def test__train__init_from_takes_a_shipped_model_name(tmp_path):
    """``init_from="default"`` is the shipped model (a pip install has no models/ directory)."""
    from lcpfn import LCPFN

    shipped = LCPFN.from_pretrained("default")
    cfg = shipped.model.config
    arch = {f: getattr(cfg, f) for f in ("seq_len", "num_bins", "d_model", "n_layers", "n_heads", "d_ff",
                                         "head_hidden", "value_hidden")}
    config = TrainConfig(out_dir=str(tmp_path), init_from="default", prior="extended", budget=52, steps=1,
                         batch_size=4, border_curves=100, **arch)
    assert train(config, stop_at_step=0, progress=False).step == 0
    a, b = _weights(tmp_path), shipped.model.state_dict()
    assert all(torch.equal(a[f"model.{k}"], v) for k, v in b.items())
