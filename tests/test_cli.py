import json
import subprocess
import sys

import pytest

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
    # a loss far outside [0, 1]: refused without bounds, forecast with inferred ones
    f = _write(tmp_path, "loss\n" + "".join(f"{2.5 - 0.05 * i}\n" for i in range(1, 21)))
    args = ["predict", str(f), "--max-epochs", "40", "--model", str(tiny_model_dir), "--direction", "minimize"]
    assert main(args) == 2 and "bounds" in capsys.readouterr().err
    assert main(args + ["--bounds", *bounds, "--target", "1.5"]) == 0
    out = capsys.readouterr().out
    assert "loss: 20 observed epochs" in out and "P(value at epoch 40 below 1.5)" in out


@pytest.mark.parametrize("bounds, match", [(["1", "1"], "low < high"), (["0", "x"], "'x'"), (["inf", "1"], "finite")])
def test__predict__bad_bounds_exit_2_naming_the_value(tmp_path, tiny_model_dir, capsys, bounds, match):
    f = _write(tmp_path, "\n".join(str(0.3 + 0.01 * i) for i in range(10)))
    args = ["predict", str(f), "--max-epochs", "30", "--model", str(tiny_model_dir), "--bounds", *bounds]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert match in err and "Traceback" not in err


def test__predict__bounds_before_the_file_keep_the_file(tmp_path, tiny_model_dir, capsys):
    f = _write(tmp_path, "\n".join(str(30 + i) for i in range(10)))
    args = ["predict", "--bounds", "0", "100", str(f), "--max-epochs", "30", "--model", str(tiny_model_dir)]
    assert main(args) == 0 and "10 observed epochs" in capsys.readouterr().out


def test__train__cli_trains_and_resumes(tmp_path):
    def args(out):
        return ["train", "--out-dir", str(out), "--steps", "4", "--batch-size", "8", "--num-bins", "20",
                "--d-model", "16", "--n-layers", "1", "--n-heads", "2", "--d-ff", "32", "--border-curves", "500",
                "--no-progress"]

    out = tmp_path / "run"
    assert main(args(out)) == 0
    assert main(args(out)) == 2  # refuses to overwrite
    assert main(args(out) + ["--resume"]) == 0  # finished run: resume is a no-op that succeeds
    # a second stage on another prior, warm-started from the first
    assert main(args(tmp_path / "stage2") + ["--init-from", str(out), "--prior", "extended"]) == 0
    assert main(args(tmp_path / "stage3") + ["--init-from", str(tmp_path / "missing")]) == 2
    # prior settings, values in JSON
    stage4 = tmp_path / "stage4"
    assert main(args(stage4) + ["--prior", "extended", "--prior-setting", "p_step=0.5",
                                "--prior-setting", "step_width_range=[0.05, 0.3]"]) == 0
    prior = json.loads((stage4 / ckpt.CONFIG_FILE).read_text())["prior"]
    assert prior["p_step"] == 0.5 and prior["step_width_range"] == [0.05, 0.3]
    assert main(args(tmp_path / "bad") + ["--prior", "extended", "--prior-setting", "p_step"]) == 2
    assert main(args(tmp_path / "bad") + ["--prior", "extended", "--prior-setting", "p_step=lots"]) == 2
    assert main(args(tmp_path / "bad") + ["--prior", "extended", "--prior-setting", "p_nope=1"]) == 2
    # a run budget: shorter training curves, recorded as the model's native length
    stage5 = tmp_path / "stage5"
    assert main(args(stage5) + ["--prior", "extended", "--budget", "30"]) == 0
    assert json.loads((stage5 / ckpt.CONFIG_FILE).read_text())["budget"] == 30
    assert main(args(tmp_path / "bad") + ["--budget", "101"]) == 2


def test__console_script__help_runs():
    proc = subprocess.run([sys.executable, "-m", "lcpfn.cli", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "predict" in proc.stdout and "train" in proc.stdout
