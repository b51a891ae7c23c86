import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from lcpfn import checkpoint as ckpt
from lcpfn.cli import main


def _write(tmp_path, text, name="c.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test__predict__prints_a_quantile_table(tmp_path, tiny_model_dir, capsys):
    f = _write(tmp_path, "epoch,acc\n" + "".join(f"{i},{0.3 + 0.01 * i}\n" for i in range(1, 21)))
    rc = main(["predict", str(f), "--max-epochs", "50", "--model", str(tiny_model_dir), "--target", "0.6"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "acc: 20 observed epochs" in out and "q0.5" in out
    assert out.count("\n50 ") == 1 and "P(value at epoch 50 above 0.6)" in out


def test__predict__plot_writes_a_png(tmp_path, tiny_model_dir):
    f = _write(tmp_path, "\n".join(str(0.3 + 0.01 * i) for i in range(10)))
    png = tmp_path / "fan.png"
    assert main(["predict", str(f), "--max-epochs", "30", "--model", str(tiny_model_dir), "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test__predict__plot_without_matplotlib_fails_before_any_work(tmp_path, tiny_model_dir, capsys, monkeypatch):
    import lcpfn.io
    import lcpfn.predictor

    def never(*args, **kwargs):
        raise AssertionError("the curves were read or the model loaded before the options were checked")

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` raises ImportError
    monkeypatch.setattr(lcpfn.io, "read_curves_file", never)
    monkeypatch.setattr(lcpfn.predictor.LCPFN, "from_pretrained", never)
    f = _write(tmp_path, "\n".join(str(0.3 + 0.01 * i) for i in range(10)))
    png = str(tmp_path / "x.png")
    rc = main(["predict", str(f), "--max-epochs", "30", "--model", str(tiny_model_dir), "--plot", png])
    out, err = capsys.readouterr()
    assert rc == 2 and out == ""
    assert "pip install 'lcpfn[plot]'" in err and "--plot" in err and "Traceback" not in err


def test__plotting__leaves_the_matplotlib_backend_and_pyplot_alone(tmp_path, tiny_model_dir):
    import importlib

    import matplotlib
    import matplotlib.pyplot as plt

    from lcpfn import LCPFN, plotting

    before = matplotlib.get_backend()
    try:
        matplotlib.use("svg")  # a backend the caller chose; plotting must not switch it to Agg
        importlib.reload(plotting)
        figures = plt.get_fignums()
        fc = LCPFN.from_pretrained(tiny_model_dir).predict([0.3, 0.4, 0.45, 0.5], max_epochs=20)
        plotting.plot_forecasts([(fc, ["a"])], path=tmp_path / "fan.png")
        plotting.plot_forecast(fc, path=tmp_path / "one.png")
        assert matplotlib.get_backend() == "svg" and plt.get_fignums() == figures
        assert (tmp_path / "fan.png").read_bytes()[:4] == b"\x89PNG" and (tmp_path / "one.png").is_file()
    finally:
        matplotlib.use(before)


@pytest.mark.parametrize(
    "text, match",
    [
        ("", "empty"),
        ("acc\n", "header row but no values"),
        ("0.1\nabc\n0.3\n", "'abc'"),
        ("0.1\nnan\n0.2\n", "nan"),
    ],
)
def test__predict__malformed_files_exit_2_with_a_message(tmp_path, tiny_model_dir, capsys, text, match):
    f = _write(tmp_path, text)
    assert main(["predict", str(f), "--max-epochs", "50", "--model", str(tiny_model_dir)]) == 2
    err = capsys.readouterr().err
    assert match in err and "Traceback" not in err


def test__predict__missing_file_and_unknown_model(tmp_path, capsys):
    assert main(["predict", str(tmp_path / "nope.csv"), "--max-epochs", "50"]) == 2
    assert "does not exist" in capsys.readouterr().err
    f = _write(tmp_path, "0.1\n0.2\n")
    assert main(["predict", str(f), "--max-epochs", "50", "--model", "nope"]) == 2
    assert "neither a shipped model" in capsys.readouterr().err


def test__predict__wide_file_with_curves_of_different_lengths(tmp_path, tiny_model_dir, capsys):
    f = _write(tmp_path, "a,b\n0.1,0.2\n0.2,0.3\n0.3,\n")
    png = tmp_path / "fan.png"
    assert main(["predict", str(f), "--max-epochs", "20", "--model", str(tiny_model_dir), "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "# a: 3 observed epochs" in out and "# b: 2 observed epochs" in out and png.is_file()


@pytest.mark.parametrize("bounds", [["none", "none"], ["0", "none"], ["None", "3"], ["0", "10"]])
def test__predict__bounds_infer_and_one_sided(tmp_path, tiny_model_dir, capsys, bounds):
    # a loss far outside [0, 1]: without --bounds predict's default (0, none); a range the values
    # leave is refused in the flag's words; inferred and one-sided ranges forecast
    f = _write(tmp_path, "loss\n" + "".join(f"{2.5 - 0.05 * i}\n" for i in range(1, 21)))
    args = ["predict", str(f), "--max-epochs", "40", "--model", str(tiny_model_dir), "--direction", "minimize"]
    assert main(args) == 0
    assert "# values: low 0, high inferred from each curve's observed values (the default" in capsys.readouterr().out
    assert main(args + ["--bounds", "0", "1"]) == 2
    err = capsys.readouterr().err
    assert "--bounds 0.0 1.0" in err and "bounds=" not in err and "None" not in err
    assert main(args + ["--bounds", *bounds, "--target", "1.5"]) == 0
    out = capsys.readouterr().out
    assert "loss: 20 observed epochs" in out and "P(value at epoch 40 below 1.5)" in out


@pytest.mark.parametrize(
    "options, message",
    [
        (["--bounds", "1", "1"], "--bounds needs LOW < HIGH but got 1 1"),
        (["--bounds", "0", "x"], "--bounds takes LOW HIGH, each a number or 'none', but got 'x'"),
        (["--bounds", "inf", "1"],
         "--bounds must be finite numbers ('none' for a side that is not known) but got inf 1"),
        (["--max-epochs", "1"], "--max-epochs must be at least 2 but got 1"),
        (["--quantiles", "0.5", "1.5"], "--quantiles must lie strictly between 0 and 1 but got 1.5"),
        (["--every", "0"], "--every must be at least 1 but got 0"),
        (["--target", "nan"], "--target must be a finite number but got nan"),
        (["--plot", "/no/such/dir/fan.png"], "--plot /no/such/dir/fan.png: directory '/no/such/dir' does not exist"),
    ],
)
def test__predict__bad_options_are_named_by_their_flag_before_any_work(tmp_path, capsys, monkeypatch, options, message):
    import lcpfn.io

    def never(*args, **kwargs):
        raise AssertionError("the curves were read before the options were checked")

    monkeypatch.setattr(lcpfn.io, "read_curves_file", never)
    f = _write(tmp_path, "\n".join(str(0.3 + 0.01 * i) for i in range(10)))
    assert main(["predict", str(f), "--max-epochs", "30", *options]) == 2
    err = capsys.readouterr().err
    assert err == f"lcpfn predict: error: {message}\n"


def test__predict__curve_errors_speak_of_flags(tmp_path, tiny_model_dir, capsys):
    f = _write(tmp_path, "\n".join(str(0.3 + 0.01 * i) for i in range(20)))
    assert main(["predict", str(f), "--max-epochs", "10", "--model", str(tiny_model_dir)]) == 2
    err = capsys.readouterr().err
    assert "--max-epochs (10)" in err and "max_epochs" not in err


def test__predict__bounds_before_the_file_keep_the_file(tmp_path, tiny_model_dir, capsys):
    f = _write(tmp_path, "\n".join(str(30 + i) for i in range(10)))
    args = ["predict", "--bounds", "0", "100", str(f), "--max-epochs", "30", "--model", str(tiny_model_dir)]
    assert main(args) == 0 and "10 observed epochs" in capsys.readouterr().out


def _train_args(out, *more):
    return ["train", "--out-dir", str(out), "--steps", "4", "--batch-size", "8", "--num-bins", "20",
            "--d-model", "16", "--n-layers", "1", "--n-heads", "2", "--d-ff", "32", "--border-curves", "500",
            "--no-progress", *more]


def test__train__cli_trains_and_resumes(tmp_path):
    out = tmp_path / "run"
    assert main(_train_args(out)) == 0
    assert main(_train_args(out)) == 2  # refuses to overwrite
    assert main(_train_args(out, "--resume")) == 0  # finished run: resume is a no-op that succeeds
    # a second stage on another prior, warm-started from the first
    assert main(_train_args(tmp_path / "stage2", "--init-from", str(out), "--prior", "extended")) == 0
    assert main(_train_args(tmp_path / "stage3", "--init-from", str(tmp_path / "missing"))) == 2
    # prior settings, values in JSON
    stage4 = tmp_path / "stage4"
    assert main(_train_args(stage4, "--prior", "extended", "--prior-setting", "p_step=0.5",
                            "--prior-setting", "step_width_range=[0.05, 0.3]")) == 0
    prior = json.loads((ckpt.latest_checkpoint(stage4) / ckpt.CONFIG_FILE).read_text())["prior"]
    assert prior["p_step"] == 0.5 and prior["step_width_range"] == [0.05, 0.3]
    assert main(_train_args(tmp_path / "bad", "--prior", "extended", "--prior-setting", "p_step")) == 2
    assert main(_train_args(tmp_path / "bad", "--prior", "extended", "--prior-setting", "p_step=lots")) == 2
    assert main(_train_args(tmp_path / "bad", "--prior", "extended", "--prior-setting", "p_nope=1")) == 2
    # a run budget: shorter training curves, recorded as the model's native length
    stage5 = tmp_path / "stage5"
    assert main(_train_args(stage5, "--prior", "extended", "--budget", "30")) == 0
    assert json.loads((ckpt.latest_checkpoint(stage5) / ckpt.CONFIG_FILE).read_text())["budget"] == 30
    assert main(_train_args(tmp_path / "bad", "--budget", "101")) == 2


def _weights(out_dir):
    return ckpt.read_tensors(ckpt.latest_checkpoint(out_dir) / ckpt.WEIGHTS_FILE)


def _assert_same_weights(a_dir, b_dir):
    a, b = _weights(a_dir), _weights(b_dir)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test__train__resume_needs_no_flags_and_refuses_changed_ones(tmp_path, capsys):
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert main(_train_args(straight, "--lr", "3e-3", "--threads", "1")) == 0
    assert main(_train_args(split, "--lr", "3e-3", "--time-limit", "0")) == 0  # stops before the first step
    assert "stopped (resume with --resume) at step 0/4" in capsys.readouterr().out
    # flags that define the run and differ are refused, named as flags; session flags may change
    assert main(["train", "--out-dir", str(split), "--resume", "--lr", "0.5", "--steps", "4", "--d-model", "32"]) == 2
    err = capsys.readouterr().err
    assert "--lr 0.5 (the run has 0.003)" in err and "--d-model 32 (the run has 16)" in err
    assert "--steps" not in err and "lr=" not in err
    assert main(["train", "--out-dir", str(split), "--resume", "--curves", "80"]) == 2  # 80 // 8 = 10 steps, not 4
    assert "--steps 10 (the run has 4)" in capsys.readouterr().err
    # no other flag: the recorded run continues, to the weights of the uninterrupted one
    assert main(["train", "--out-dir", str(split), "--resume", "--no-progress", "--threads", "1",
                 "--curves", "32"]) == 0
    assert "finished at step 4/4" in capsys.readouterr().out
    _assert_same_weights(straight, split)


def test__train__resume_in_an_empty_directory_starts_the_run(tmp_path):
    assert main(_train_args(tmp_path / "new", "--resume")) == 0
    assert ckpt.read_run_state(tmp_path / "new")[1]["final"] is True


@pytest.mark.parametrize(
    "options, message",
    [
        (["--steps", "0"], "--steps must be at least 1 but got 0"),
        (["--lr", "0.1", "--min-lr", "1"], "--min-lr must be between 0 and --lr (0.1) but got 1.0"),
        (["--n-heads", "3"], "--d-model (16) must be divisible by --n-heads (3)"),
        (["--budget", "101"], "--budget must be an integer from 2 to --seq-len (100) but got 101"),
        (["--curves", "4"], "--curves must be at least --batch-size (8) but got 4"),
        (["--prior-setting", "p_step"], "--prior-setting takes NAME=VALUE but got 'p_step'"),
        (["--init-from", "/no/such/run"], "--init-from: checkpoint directory '/no/such/run' does not exist"),
    ],
)
def test__train__bad_options_are_named_by_their_flag(tmp_path, capsys, options, message):
    assert main(_train_args(tmp_path / "run", *options)) == 2
    err = capsys.readouterr().err
    assert err.startswith("lcpfn train: error: ") and message in err


def test__cli__help_version_and_option_errors_import_neither_torch_nor_numpy(tmp_path):
    """``lcpfn --help`` and friends must answer without the seconds torch takes to import."""
    code = f"""
import json, sys
import lcpfn
baseline = {{m.split(".")[0] for m in sys.modules}} & {{"torch", "numpy"}}
from lcpfn.cli import main
calls = [["--help"], ["--version"], ["train", "--help"], ["predict", "--help"], ["evaluate", "--help"],
         ["app", "--help"], ["predict", "f.csv"], ["train", "--out-dir", {str(tmp_path / "r")!r}, "--steps", "0"],
         ["predict", "f.csv", "--max-epochs", "1"], ["predict", "f.csv", "--max-epochs", "9", "--bounds", "0", "x"]]
codes = []
for argv in calls:
    try:
        codes.append(main(argv))
    except SystemExit as exc:
        codes.append(exc.code)
heavy = {{m.split(".")[0] for m in sys.modules}} & {{"torch", "numpy"}}
print(json.dumps({{"codes": codes, "baseline": sorted(baseline), "heavy": sorted(heavy)}}))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["codes"] == [0, 0, 0, 0, 0, 0, 2, 2, 2, 2] and "lcpfn 0." in proc.stdout
    assert result["baseline"] == [] and result["heavy"] == []


def test__cli__version_prints_the_package_version(capsys):
    import lcpfn

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out == f"lcpfn {lcpfn.__version__}\n"


def test__cli__ctrl_c_while_starting_or_running_is_one_line(monkeypatch, capsys):
    import lcpfn.cli

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(lcpfn.cli, "build_parser", interrupt)  # while parsing
    assert main(["--help"]) == 130
    assert capsys.readouterr().err == "lcpfn: interrupted\n"
    monkeypatch.undo()
    monkeypatch.setattr(lcpfn.cli, "_check_predict", interrupt)  # while the command imports and runs
    assert main(["predict", "f.csv", "--max-epochs", "9"]) == 130
    assert capsys.readouterr().err == "lcpfn predict: interrupted\n"


def test__cli__broken_pipe_is_quiet(monkeypatch, capsys):
    import lcpfn.cli

    def pipe(*args, **kwargs):
        raise BrokenPipeError

    monkeypatch.setattr(lcpfn.cli, "_check_predict", pipe)
    monkeypatch.setattr(sys, "stderr", sys.stderr)  # main silences stderr; put it back afterwards
    assert main(["predict", "f.csv", "--max-epochs", "9"]) == 0
    assert capsys.readouterr().err == ""


def test__console_script__help_runs():
    proc = subprocess.run([sys.executable, "-m", "lcpfn.cli", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "predict" in proc.stdout and "train" in proc.stdout
    assert "evaluate" in proc.stdout and "--version" in proc.stdout


def test__evaluate__help_is_registered():
    proc = subprocess.run([sys.executable, "-m", "lcpfn.cli", "evaluate", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "--forecasters" in proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize("sig, status, said", [(signal.SIGTERM, 143, "stopped by SIGTERM (resume with --resume)"),
                                                (signal.SIGINT, 130, "interrupted")])
def test__train__signal_checkpoints_and_resume_matches_an_uninterrupted_run(tmp_path, sig, status, said):
    """SIGTERM or Ctrl-C stop ``lcpfn train`` at a step boundary with a checkpoint (exit 143 or
    130); ``--resume`` then ends with the weights of a run that was never stopped."""
    straight, split = tmp_path / "straight", tmp_path / "split"
    opts = ["--steps", "60", "--batch-size", "64", "--num-bins", "20", "--d-model", "32", "--n-layers", "2",
            "--n-heads", "2", "--d-ff", "64", "--border-curves", "500", "--checkpoint-every", "2", "--threads", "1",
            "--device", "cpu", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen([sys.executable, "-m", "lcpfn.cli", "train", "--out-dir", str(split), *opts],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while ckpt.latest_checkpoint(split) is None and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == status, err[-3000:]
    assert said in out + err and "Traceback" not in err
    _, state = ckpt.read_run_state(split)
    assert 2 <= state["step"] < 60 and not state["final"]
    assert main(["train", "--out-dir", str(split), "--resume", "--no-progress"]) == 0
    assert main(["train", "--out-dir", str(straight), *opts]) == 0
    _assert_same_weights(straight, split)


# --- predict --out: many curves, streamed --------------------------------------------------------
def _npy_curves(path, n=13, t=15):
    import numpy as np

    rng = np.random.default_rng(0)
    epochs = np.arange(1, t + 1)
    curves = 0.8 - 0.4 * np.exp(-epochs / rng.uniform(3, 20, (n, 1))) + rng.normal(0, 0.01, (n, t))
    curves[2, 9:] = np.nan  # a shorter curve: NaN after its end
    np.save(path, curves)
    return curves


def _read_rows(path):
    import csv

    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def test__predict_out__writes_every_curves_rows_as_the_api_forecasts_them(tmp_path, tiny_model_dir, capsys):

    from lcpfn import LCPFN

    curves = _npy_curves(tmp_path / "c.npy")
    out = tmp_path / "f.csv"
    rc = main(["predict", str(tmp_path / "c.npy"), "--max-epochs", "40", "--model", str(tiny_model_dir),
               "--out", str(out), "--chunk-size", "4", "--quantiles", "0.1", "0.5", "--target", "0.75",
               "--no-progress"])
    said = capsys.readouterr().out
    assert rc == 0 and "# values: range [0, 1]" in said and "for 13 curves to" in said
    header, rows = _read_rows(out)
    assert header == ["curve", "epoch", "q0.1", "q0.5", "mean", "p_above_0.75"]
    assert not (tmp_path / "f.csv.partial").exists()
    fc = LCPFN.from_pretrained(tiny_model_dir).predict(curves, max_epochs=40)
    got = {(int(r[0]), int(r[1])): [float(v) for v in r[2:]] for r in rows}
    assert sorted({c for c, _ in got}) == list(range(13))
    assert {e for c, e in got if c == 2} >= {10, 40} and min(e for c, e in got if c == 0) == 16
    for (c, e), (q1, q5, mean, p) in got.items():
        h = e - int(fc.epochs[0])
        assert q1 == pytest.approx(fc.quantile(0.1)[c, h], rel=1e-6)
        assert q5 == pytest.approx(fc.median()[c, h], rel=1e-6)
        assert mean == pytest.approx(fc.mean()[c, h], rel=1e-6)
        assert p == pytest.approx(fc.prob_above(0.75, epoch=e)[c], rel=1e-6, abs=1e-9)
    assert len(rows) == len(got)  # one row per curve and epoch


def test__predict_out__a_csv_input_names_its_curves(tmp_path, tiny_model_dir, capsys):
    f = _write(tmp_path, "epoch,lossA,lossB\n" + "".join(f"{i},{2 / i},{3 / i}\n" for i in range(1, 11)))
    out = tmp_path / "f.csv"
    rc = main(["predict", str(f), "--max-epochs", "30", "--model", str(tiny_model_dir), "--direction", "minimize",
               "--out", str(out), "--every", "5", "--target", "0.1", "--no-progress"])
    assert rc == 0
    header, rows = _read_rows(out)
    assert header[-1] == "p_below_0.1"
    assert [(r[0], r[1]) for r in rows] == [(n, str(e)) for n in ("lossA", "lossB") for e in (11, 16, 21, 26, 30)]


def test__predict__a_npy_file_is_printed_when_small_and_refused_when_large(tmp_path, tiny_model_dir, capsys):
    import numpy as np

    _npy_curves(tmp_path / "c.npy", n=3)
    assert main(["predict", str(tmp_path / "c.npy"), "--max-epochs", "30", "--model", str(tiny_model_dir)]) == 0
    out = capsys.readouterr().out
    assert "# row 2: 9 observed epochs" in out and "# row 0: 15 observed epochs" in out
    np.save(tmp_path / "many.npy", np.full((51, 5), 0.5))
    assert main(["predict", str(tmp_path / "many.npy"), "--max-epochs", "30", "--model", str(tiny_model_dir)]) == 2
    err = capsys.readouterr().err
    assert "holds 51 curves; at most 50 are printed" in err and "--out" in err


def test__predict_out__a_bad_curve_later_in_the_file_leaves_no_output(tmp_path, tiny_model_dir, capsys):
    import numpy as np

    curves = _npy_curves(tmp_path / "c.npy")
    curves[11, 4] = np.inf
    np.save(tmp_path / "c.npy", curves)
    out = tmp_path / "f.csv"
    rc = main(["predict", str(tmp_path / "c.npy"), "--max-epochs", "40", "--model", str(tiny_model_dir),
               "--out", str(out), "--chunk-size", "5", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "curves 10..12: curves must be finite, but has inf at curve 11, epoch 5" in err
    assert not out.exists() and not (tmp_path / "f.csv.partial").exists()


def test__predict_out__progress_bar_counts_curves_on_stderr(tmp_path, tiny_model_dir, capsys):
    _npy_curves(tmp_path / "c.npy", n=6)
    rc = main(["predict", str(tmp_path / "c.npy"), "--max-epochs", "30", "--model", str(tiny_model_dir),
               "--out", str(tmp_path / "f.csv"), "--chunk-size", "4"])
    assert rc == 0 and "6/6" in capsys.readouterr().err


@pytest.mark.parametrize(
    "options, message",
    [(["--chunk-size", "10"], "--chunk-size applies to --out only"),
     (["--out", "{tmp}/f.csv", "--chunk-size", "0"], "--chunk-size must be at least 1 but got 0"),
     (["--out", "{tmp}/f.csv", "--plot", "{tmp}/f.png"], "--plot draws printed forecasts; it cannot be combined"),
     (["--out", "/no/such/dir/f.csv"], "--out /no/such/dir/f.csv: directory '/no/such/dir' does not exist"),
     (["--out", "{tmp}"], "is a directory"),
     (["--out", "{tmp}/c.csv"], "is FILE itself")],
)
def test__predict_out__bad_options_are_named_before_any_work(tmp_path, capsys, monkeypatch, options, message):
    import lcpfn.io
    import lcpfn.predictor

    def never(*args, **kwargs):
        raise AssertionError("the curves were read or the model loaded before the options were checked")

    monkeypatch.setattr(lcpfn.io, "read_curves_file", never)
    monkeypatch.setattr(lcpfn.predictor.LCPFN, "from_pretrained", never)
    f = _write(tmp_path, "\n".join(str(0.3 + 0.01 * i) for i in range(10)))
    rc = main(["predict", str(f), "--max-epochs", "30", *(o.replace("{tmp}", str(tmp_path)) for o in options)])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and err.count("\n") == 1


def test__predict__help_documents_the_npy_input_and_out(capsys):
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert ".npy" in text and "one curve per row" in text and "--out" in text and "--chunk-size" in text
