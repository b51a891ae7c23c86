"""Checkpoints: safetensors weights + a JSON config; loading rebuilds, never unpickles.

A checkpoint is a directory::

    config.json          {"format": "lcpfn-checkpoint", "model": ModelConfig, "prior": ..., ...}
    model.safetensors    PFN weights ("model.*") and the bar borders ("bar.borders")

A training run's directory (``OUT_DIR``) holds its newest checkpoint and a pointer to it::

    training_state.json              {"checkpoint": "checkpoints/step-0000500", "step": 500, "final": false, ...}
    checkpoints/step-0000500/        config.json, model.safetensors (as above) and, to resume,
                                     training_state.safetensors (optimizer moments, RNG states) and
                                     training_state.json (step, counters, the run's TrainConfig)

A checkpoint is committed as one unit: its files are written into a fresh temporary directory
(``checkpoints/.tmp-*``), each file and the directory are fsynced, the directory is renamed to
its step name, and then ``training_state.json`` is replaced (temp file, fsync, rename) to point
at it. A reader follows the pointer, so it only ever sees a complete set; whatever a killed save
left behind (temporary directories, a renamed directory the pointer never reached, an older
checkpoint) is removed by :func:`remove_stale` when the run resumes. :func:`load_model` on
``OUT_DIR`` loads the checkpoint the pointer names.

Importing this module imports no torch; loading and saving do.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping
from dataclasses import asdict, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lcpfn import limits
from lcpfn.errors import CheckpointError

if TYPE_CHECKING:
    import torch

    from lcpfn.bar_distribution import BarDistribution
    from lcpfn.model import PFN

FORMAT = "lcpfn-checkpoint"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
STATE_FILE = "training_state.safetensors"
STATE_JSON = "training_state.json"
CHECKPOINTS_DIR = "checkpoints"
_TEMP_PREFIX = ".tmp-"


def _write_file(path: Path, data: bytes) -> None:
    """Create ``path`` (it must not exist) holding ``data``, on disk when this returns."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies, as to open()
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    """Make a rename or a new entry in directory ``path`` durable (a no-op where directories
    cannot be opened, i.e. Windows)."""
    if os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temp_name(name: str) -> str:
    return f"{_TEMP_PREFIX}{name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` by a file holding ``data``: a reader sees the old file or the new one."""
    path = Path(path)
    tmp = path.parent / _temp_name(path.name)
    try:
        _write_file(tmp, data)
        os.replace(tmp, path)
    except BaseException:
        if tmp.exists():
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()


def _tensor_bytes(tensors: Mapping[str, torch.Tensor], metadata: dict[str, str] | None = None) -> bytes:
    from safetensors.torch import save

    return save({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, metadata=metadata)


def write_json(path: Path, obj: Any) -> None:
    _atomic_write(Path(path), _json_bytes(obj))


def write_tensors(path: Path, tensors: Mapping[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    _atomic_write(Path(path), _tensor_bytes(tensors, metadata))


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not Path(path).is_file():
        raise CheckpointError(f"checkpoint file {str(path)!r} is missing")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"checkpoint file {str(path)!r} is corrupt or not safetensors: {exc}") from None


def read_json(path: Path, *, max_bytes: int | None = None) -> dict[str, Any]:
    """The JSON object in ``path``; ``max_bytes``: refuse a larger file before reading it."""
    if not Path(path).is_file():
        raise CheckpointError(f"checkpoint file {str(path)!r} is missing")
    if max_bytes is not None:
        size = os.path.getsize(path)
        if size > max_bytes:
            raise CheckpointError(
                f"checkpoint file {str(path)!r} has {size:,} bytes, more than the {max_bytes:,} a config may have"
            )
    try:
        with open(path) as f:
            obj = json.load(f)
    # ValueError: also an integer of more digits than Python converts; RecursionError: deep nesting
    except (ValueError, UnicodeDecodeError, OSError, RecursionError) as exc:
        raise CheckpointError(f"checkpoint file {str(path)!r} is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint file {str(path)!r} must hold a JSON object")
    return obj


def model_files(
    model: PFN,
    bar: BarDistribution,
    *,
    prior: dict[str, Any],
    normalization: str = "unit",
    extra: dict[str, Any] | None = None,
) -> dict[str, bytes]:
    """The contents of ``model.safetensors`` and ``config.json`` for ``model`` and ``bar``."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors["bar.borders"] = bar.borders
    step = str((extra or {}).get("step", ""))
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": asdict(model.config),
        "prior": prior,
        "normalization": normalization,
        **(extra or {}),
    }
    return {
        WEIGHTS_FILE: _tensor_bytes(tensors, metadata={"format": FORMAT, "step": step}),
        CONFIG_FILE: _json_bytes(config),
    }


def training_files(
    model: PFN,
    bar: BarDistribution,
    *,
    prior: dict[str, Any],
    extra: dict[str, Any],
    state_tensors: Mapping[str, torch.Tensor],
    state: dict[str, Any],
) -> dict[str, bytes]:
    """The files of a training checkpoint: the model's, plus ``training_state.safetensors``
    (``state_tensors``) and ``training_state.json`` (``state``, with ``"step"``)."""
    files = model_files(model, bar, prior=prior, extra=extra)
    files[STATE_FILE] = _tensor_bytes(state_tensors, metadata={"step": str(state["step"])})
    files[STATE_JSON] = _json_bytes(state)
    return files


def save_model(
    directory: str | Path,
    model: PFN,
    bar: BarDistribution,
    *,
    prior: dict[str, Any],
    normalization: str = "unit",
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``model.safetensors`` and ``config.json`` into ``directory`` (created if needed).

    Each file is replaced atomically. A training run commits its checkpoints as a whole with
    :func:`commit_checkpoint` instead.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in model_files(model, bar, prior=prior, normalization=normalization, extra=extra).items():
        _atomic_write(directory / name, data)
    return directory


# --- training runs -------------------------------------------------------------------------


def _pointed(out_dir: Path, pointer: Mapping[str, Any]) -> Path:
    """The checkpoint directory ``training_state.json`` names; a run written before checkpoints
    had their own directories (no ``"checkpoint"`` key) keeps its checkpoint in ``out_dir``."""
    rel = pointer.get("checkpoint")
    if rel is None:
        return out_dir
    parts = Path(rel).parts if isinstance(rel, str) else ()
    if len(parts) != 2 or parts[0] != CHECKPOINTS_DIR or parts[1].startswith(".") or parts[1] == "..":
        raise CheckpointError(f"{str(out_dir / STATE_JSON)!r} names an invalid checkpoint {rel!r}")
    return out_dir / rel


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    """The committed checkpoint directory of the training run in ``out_dir``, or ``None`` when
    ``out_dir`` holds no run (no ``training_state.json``)."""
    out_dir = Path(out_dir)
    pointer_path = out_dir / STATE_JSON
    if not pointer_path.is_file():
        return None
    return _pointed(out_dir, read_json(pointer_path))


def read_run_state(out_dir: str | Path) -> tuple[Path, dict[str, Any]] | None:
    """``(checkpoint directory, its training state)`` of the run in ``out_dir``, or ``None``."""
    directory = latest_checkpoint(out_dir)
    if directory is None:
        return None
    return directory, read_json(directory / STATE_JSON)


def _resolve(directory: Path) -> Path:
    """A checkpoint directory as given, or the newest checkpoint of a training run's directory."""
    if (directory / STATE_JSON).is_file():
        return latest_checkpoint(directory) or directory
    return directory


def _free_name(root: Path, name: str) -> Path:
    candidate, n = root / name, 1
    while candidate.exists():
        n += 1
        candidate = root / f"{name}-{n}"
    return candidate


def commit_checkpoint(
    out_dir: str | Path, files: Mapping[str, bytes], *, name: str, summary: Mapping[str, Any]
) -> Path:
    """Publish ``files`` (file name -> contents) as the run's newest checkpoint, all or nothing.

    They go to ``OUT_DIR/checkpoints/<name>`` (``<name>-2`` and so on if that exists) and
    ``training_state.json`` is replaced by ``{"checkpoint": ..., **summary}``; then the
    previous checkpoint is removed. Returns the checkpoint directory.
    """
    out_dir = Path(out_dir)
    root = out_dir / CHECKPOINTS_DIR
    os.makedirs(root, exist_ok=True)
    tmp = root / _temp_name(name)
    os.mkdir(tmp)
    for file_name, data in files.items():
        _write_file(tmp / file_name, data)
    _fsync_dir(tmp)
    final = _free_name(root, name)
    os.rename(tmp, final)
    _fsync_dir(root)
    _atomic_write(out_dir / STATE_JSON, _json_bytes({**summary, "checkpoint": f"{CHECKPOINTS_DIR}/{final.name}"}))
    remove_stale(out_dir)
    return final


def _remove_tree(path: Path) -> None:
    with os.scandir(path) as entries:
        for entry in list(entries):
            if entry.is_dir(follow_symlinks=False):
                _remove_tree(Path(entry.path))
            else:
                os.unlink(entry.path)
    os.rmdir(path)


def remove_stale(out_dir: str | Path) -> None:
    """Remove what no longer belongs to the run in ``out_dir``: every entry of ``checkpoints/``
    but the committed one (older checkpoints, temporary directories and a directory a killed
    save renamed but never committed), temporary files of ``training_state.json``, and, once the
    run has moved to ``checkpoints/``, the files of the old single-directory layout."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return
    keep = latest_checkpoint(out_dir)
    root = out_dir / CHECKPOINTS_DIR
    if root.is_dir():
        for entry in root.iterdir():
            if entry == keep or not entry.name.startswith(("step-", _TEMP_PREFIX)):
                continue  # the committed checkpoint, or not ours
            if entry.is_dir() and not entry.is_symlink():
                _remove_tree(entry)
            else:
                os.unlink(entry)
    for entry in out_dir.iterdir():
        if entry.name.startswith(f"{_TEMP_PREFIX}{STATE_JSON}-"):
            os.unlink(entry)
    if keep is not None and keep != out_dir:
        for legacy in (CONFIG_FILE, WEIGHTS_FILE, STATE_FILE):
            if (out_dir / legacy).is_file():
                os.unlink(out_dir / legacy)


def load_model(
    directory: str | Path, *, device: str | torch.device = "cpu"
) -> tuple[PFN, BarDistribution, dict[str, Any]]:
    """Rebuild the model and bar distribution saved in ``directory`` (a checkpoint directory, or
    a training run's ``OUT_DIR``: its newest checkpoint); returns them and the config.

    Everything is checked before the model is built: the config's types and sizes
    (:mod:`lcpfn.limits`), that the weights file holds exactly the tensors of that config (read
    from its header), and that every weight and bin border is finite. Any problem raises
    :class:`~lcpfn.errors.CheckpointError` naming it.
    """
    import torch

    from lcpfn.bar_distribution import BarDistribution
    from lcpfn.model import PFN, ModelConfig

    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"checkpoint directory {str(directory)!r} does not exist")
    directory = _resolve(directory)
    config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    config = read_json(config_path, max_bytes=limits.MAX_CONFIG_BYTES)
    if config.get("format") != FORMAT:
        raise CheckpointError(
            f"{str(config_path)!r} is not an lcpfn checkpoint config (format={config.get('format')!r})"
        )
    version = config.get("format_version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise CheckpointError(f"{str(config_path)!r} has an invalid 'format_version' {version!r}: expected an integer")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint format version {version} is newer than this lcpfn supports ({FORMAT_VERSION}); upgrade lcpfn"
        )
    model_cfg = config.get("model")
    known = {f.name for f in fields(ModelConfig)}
    if not isinstance(model_cfg, dict) or set(model_cfg) - known:
        raise CheckpointError(f"{str(config_path)!r} has an invalid 'model' section: {_short(model_cfg)}")
    try:
        model_config = ModelConfig(**model_cfg)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{str(config_path)!r} has an invalid 'model' section: {exc}") from None
    budget = config.get("budget")
    if budget is not None and (
        isinstance(budget, bool) or not isinstance(budget, int) or not 2 <= budget <= model_config.seq_len
    ):
        raise CheckpointError(
            f"{str(config_path)!r} has an invalid 'budget' {_short(budget)}: "
            f"expected an integer in [2, seq_len={model_config.seq_len}]"
        )
    with torch.device("meta"):  # shapes only: nothing is allocated or initialised
        model = PFN(model_config)
    expected = {f"model.{k}": tuple(v.shape) for k, v in model.state_dict().items()}
    _check_header(weights_path, expected)
    tensors = read_tensors(weights_path)
    for key, t in tensors.items():
        if not bool(torch.isfinite(t).all()):
            raise CheckpointError(f"{str(weights_path)!r} has non-finite values (NaN or infinity) in {key!r}")
    try:
        bar = BarDistribution(tensors.pop("bar.borders"))
    except ValueError as exc:
        raise CheckpointError(f"{str(weights_path)!r} has invalid bar borders: {exc}") from None
    if bar.num_bins != model_config.num_bins:
        raise CheckpointError(
            f"{str(directory)!r}: {bar.num_bins} bins in the borders but num_bins={model_config.num_bins} in the config"
        )
    state = {k[len("model."):]: v.float() for k, v in tensors.items() if k.startswith("model.")}
    try:
        model.load_state_dict(state, strict=True, assign=True)  # the loaded tensors become the parameters
    except RuntimeError as exc:
        raise CheckpointError(f"{str(weights_path)!r} does not match its config: {exc}") from None
    model.eval()
    return model.to(device), bar.to(device), config


def _check_header(path: Path, expected: Mapping[str, tuple[int, ...]]) -> None:
    """``path``'s tensors, read from its header alone, are exactly ``expected`` (name -> shape)
    and the bar borders, all floating point: a config that disagrees with its weights is refused
    before the weights are read."""
    from safetensors import SafetensorError, safe_open

    if not Path(path).is_file():
        raise CheckpointError(f"checkpoint file {str(path)!r} is missing")
    try:
        with safe_open(str(path), framework="pt") as f:
            shapes = {k: (tuple(f.get_slice(k).get_shape()), f.get_slice(k).get_dtype()) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"checkpoint file {str(path)!r} is corrupt or not safetensors: {exc}") from None
    if "bar.borders" not in shapes:
        raise CheckpointError(f"{str(path)!r} has no bar borders ('bar.borders')")
    got = {k: shape for k, (shape, _) in shapes.items() if k != "bar.borders"}
    if got != dict(expected):
        missing = sorted(set(expected) - set(got))[:3]
        unexpected = sorted(set(got) - set(expected))[:3]
        wrong = sorted(k for k in set(got) & set(expected) if got[k] != expected[k])[:3]
        detail = "; ".join(
            f"{what}: {', '.join(f'{k} {got.get(k, expected.get(k))}' for k in keys)}"
            for what, keys in (("missing", missing), ("unexpected", unexpected), ("shape differs", wrong))
            if keys
        )
        raise CheckpointError(f"{str(path)!r} does not match its config ({detail})")
    not_float = sorted(k for k, (_, dtype) in shapes.items() if dtype not in _FLOAT_DTYPES)
    if not_float:
        raise CheckpointError(f"{str(path)!r} has tensors that are not floating point: {not_float[:3]}")


_FLOAT_DTYPES = frozenset({"F16", "BF16", "F32", "F64"})


def _short(value: Any, limit: int = 200) -> str:
    """``repr(value)``, cut to ``limit`` characters (a config value may be huge or deeply nested)."""
    try:
        text = repr(value)
    except RecursionError:
        return f"<a deeply nested {type(value).__name__}>"
    return text if len(text) <= limit else text[:limit] + "..."
