import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from lcpfn import LCPFN, CheckpointError
from lcpfn import checkpoint as ckpt
from lcpfn.bar_distribution import BarDistribution
from lcpfn.model import PFN, ModelConfig


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

    monkeypatch.setattr("safetensors.torch.save_file", boom)
    with pytest.raises(OSError):
        ckpt.save_model(tmp_path, model, bar, prior={"name": "reference"})
    assert (tmp_path / ckpt.WEIGHTS_FILE).read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [ckpt.CONFIG_FILE, ckpt.WEIGHTS_FILE]


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
