"""Checkpoints: safetensors weights + a JSON config; loading rebuilds, never unpickles.

A checkpoint is a directory::

    config.json          {"format": "lcpfn-checkpoint", "model": ModelConfig, "prior": ..., ...}
    model.safetensors    PFN weights ("model.*") and the bar borders ("bar.borders")

A training run's directory also holds ``training_state.safetensors`` (optimizer moments, RNG
states) and ``training_state.json`` (step, schedule, counters). Every file is written to a
temporary name and moved into place, and ``training_state.json`` goes last as the commit marker,
so an interrupted save never leaves a half-written file.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import torch

from lcpfn.bar_distribution import BarDistribution
from lcpfn.errors import CheckpointError
from lcpfn.model import PFN, ModelConfig

FORMAT = "lcpfn-checkpoint"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
STATE_FILE = "training_state.safetensors"
STATE_JSON = "training_state.json"

_UMASK = os.umask(0)
os.umask(_UMASK)


def _atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` then move the result onto ``path`` atomically."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json(path: Path, obj: Any) -> None:
    def _w(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=True)
            f.write("\n")

    _atomic_write(Path(path), _w)


def write_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    from safetensors.torch import save_file

    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    _atomic_write(Path(path), lambda tmp: save_file(tensors, tmp, metadata=metadata))


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not Path(path).is_file():
        raise CheckpointError(f"checkpoint file {str(path)!r} is missing")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"checkpoint file {str(path)!r} is corrupt or not safetensors: {exc}") from None


def read_json(path: Path) -> dict[str, Any]:
    if not Path(path).is_file():
        raise CheckpointError(f"checkpoint file {str(path)!r} is missing")
    try:
        with open(path) as f:
            obj = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
        raise CheckpointError(f"checkpoint file {str(path)!r} is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint file {str(path)!r} must hold a JSON object")
    return obj


def save_model(
    directory: str | Path,
    model: PFN,
    bar: BarDistribution,
    *,
    prior: dict[str, Any],
    normalization: str = "unit",
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``model.safetensors`` and ``config.json`` into ``directory`` (created if needed)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors["bar.borders"] = bar.borders
    step = str((extra or {}).get("step", ""))
    write_tensors(directory / WEIGHTS_FILE, tensors, metadata={"format": FORMAT, "step": step})
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": asdict(model.config),
        "prior": prior,
        "normalization": normalization,
        **(extra or {}),
    }
    write_json(directory / CONFIG_FILE, config)
    return directory


def load_model(directory: str | Path, *, device: str | torch.device = "cpu") -> tuple[PFN, BarDistribution, dict[str, Any]]:
    """Rebuild the model and bar distribution saved in ``directory``; returns them and the config."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"checkpoint directory {str(directory)!r} does not exist")
    config = read_json(directory / CONFIG_FILE)
    if config.get("format") != FORMAT:
        raise CheckpointError(
            f"{str(directory / CONFIG_FILE)!r} is not an lcpfn checkpoint config (format={config.get('format')!r})"
        )
    if config.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint format version {config['format_version']} is newer than this lcpfn supports "
            f"({FORMAT_VERSION}); upgrade lcpfn"
        )
    model_cfg = config.get("model")
    known = {f.name for f in fields(ModelConfig)}
    if not isinstance(model_cfg, dict) or set(model_cfg) - known:
        raise CheckpointError(f"{str(directory / CONFIG_FILE)!r} has an invalid 'model' section: {model_cfg!r}")
    try:
        model = PFN(ModelConfig(**model_cfg))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{str(directory / CONFIG_FILE)!r} has an invalid 'model' section: {exc}") from None
    budget = config.get("budget")
    if budget is not None and (
        isinstance(budget, bool) or not isinstance(budget, int) or not 2 <= budget <= model.config.seq_len
    ):
        raise CheckpointError(
            f"{str(directory / CONFIG_FILE)!r} has an invalid 'budget' {budget!r}: "
            f"expected an integer in [2, seq_len={model.config.seq_len}]"
        )
    tensors = read_tensors(directory / WEIGHTS_FILE)
    if "bar.borders" not in tensors:
        raise CheckpointError(f"{str(directory / WEIGHTS_FILE)!r} has no bar borders ('bar.borders')")
    try:
        bar = BarDistribution(tensors.pop("bar.borders"))
    except ValueError as exc:
        raise CheckpointError(f"{str(directory / WEIGHTS_FILE)!r} has invalid bar borders: {exc}") from None
    if bar.num_bins != model.config.num_bins:
        raise CheckpointError(
            f"{str(directory)!r}: {bar.num_bins} bins in the borders but num_bins={model.config.num_bins} in the config"
        )
    state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{str(directory / WEIGHTS_FILE)!r} does not match its config: {exc}") from None
    model.eval()
    return model.to(device), bar.to(device), config
