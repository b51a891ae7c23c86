"""Curves to evaluate on: sampled prior curves, curve files and real sources, each with its map
into the normalised space the paper reports in (increasing curves in about ``[0, 1]``).

* prior curves are already there;
* metrics with a known range (accuracies in ``[0, 1]`` or in %) are mapped by those bounds, flipped
  when lower is better;
* losses (no upper bound) are mapped per curve *and cutoff* by ``z = 1 - y / max(y_1..y_c)``: the
  lower bound ``0`` of a loss and the largest loss observed so far, so nothing after the cutoff
  leaks into the normalisation.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np

from lcpfn.errors import InputError
from lcpfn.evaluation.protocol import DEFAULT_SOURCES, _check_positive_int, split_of

__all__ = ["EvalDataset", "prior_dataset", "npz_dataset", "real_datasets", "default_data_dir"]

MIN_LENGTH = 10
DIVERGENCE_FACTOR = 10.0


@dataclass(frozen=True, eq=False)
class EvalDataset:
    """Curves to evaluate on, each with its map into the normalised (increasing, unit) space.

    Attributes:
        name: shown in tables, e.g. ``"prior(seed=0)"`` or ``"lcbench_surrogate"``.
        kind: ``"prior"`` (curves of the reference prior: the paper's Table 3 applies), ``"synthetic"``
            (curves of another prior, e.g. the extended one) or ``"real"``.
        curves: ``n`` raw curves, each a float64 ``(L_i,)`` array (lengths may differ).
        ids: ``n`` unique curve names.
        maximize: ``(n,)`` bool, whether higher is better.
        low, high: ``(n,)`` the metric's range; ``high`` NaN means a loss normalised by the largest
            value observed before the cutoff (``z = 1 - y / max(y_1..y_c)``, with ``low = 0``).
        split: ``"dev"``, ``"holdout"`` or ``"all"`` (see :func:`split_of`).
        notes: how the curves were selected and what was dropped, for the report.
    """

    name: str
    kind: Literal["prior", "synthetic", "real"]
    curves: tuple[np.ndarray, ...]
    ids: tuple[str, ...]
    maximize: np.ndarray
    low: np.ndarray
    high: np.ndarray
    split: str = "all"
    notes: str = ""

    def __post_init__(self) -> None:
        n = len(self.curves)
        if n == 0:
            raise InputError(f"dataset {self.name!r} has no curves")
        if len(self.ids) != n or len(set(self.ids)) != n:
            raise InputError(f"dataset {self.name!r} needs {n} unique curve ids, got {len(set(self.ids))}")
        for a in (self.maximize, self.low, self.high):
            if np.shape(a) != (n,):
                raise InputError(f"dataset {self.name!r}: per-curve arrays must have shape ({n},), got {np.shape(a)}")
        for i, y in enumerate(self.curves):
            if y.ndim != 1 or y.size < 2 or not np.all(np.isfinite(y)):
                raise InputError(
                    f"dataset {self.name!r}: curve {self.ids[i]!r} must be finite and 1-D with >= 2 points"
                )

    def __len__(self) -> int:
        return len(self.curves)

    @property
    def lengths(self) -> np.ndarray:
        return np.array([len(y) for y in self.curves])

    def head(self, n: int | None) -> EvalDataset:
        """The first ``n`` curves (all if ``n`` is None or larger)."""
        if n is None or n >= len(self):
            return self
        return replace(
            self,
            curves=self.curves[:n],
            ids=self.ids[:n],
            maximize=self.maximize[:n],
            low=self.low[:n],
            high=self.high[:n],
        )

    def normalised(self, i: int, c: int) -> tuple[np.ndarray, np.ndarray]:
        """Curve ``i`` in the normalised space, split at ``c``: observed ``(c,)``, future ``(L - c,)``."""
        y = self.curves[i]
        low, high, sign = self.normaliser(i, c)
        if sign > 0:
            z = (y - low) / (high - low)
        else:
            z = (high - y) / (high - low)
        return z[:c], z[c:]

    def normaliser(self, i: int, c: int) -> tuple[float, float, float]:
        """``(low, high, sign)`` of curve ``i``'s map at cutoff ``c``: ``z = sign (y - low) / (high - low)``
        plus ``0`` (maximize) or ``1`` (minimize), i.e. :meth:`normalised` as an affine map."""
        y = self.curves[i]
        low, high = float(self.low[i]), float(self.high[i])
        if math.isnan(high):  # a loss: bounded below by `low`, above by the worst value seen so far
            high = float(np.max(y[:c]))
            if not high > low:
                high = low + 1.0  # a flat-at-zero prefix: any positive scale will do
        return low, high, (1.0 if self.maximize[i] else -1.0)

    def raw_bounds(self, i: int) -> tuple[float, float | None]:
        """The bounds a user would pass for curve ``i`` in raw mode: the metric's range, or
        ``(low, None)`` for a loss (only its lower bound is known)."""
        high = float(self.high[i])
        return float(self.low[i]), (None if math.isnan(high) else high)

    def curve_key(self, i: int) -> str:
        """Hash of curve ``i``'s values and normalisation: the cache key part for the curve."""
        h = hashlib.sha256()
        h.update(np.ascontiguousarray(self.curves[i], dtype=np.float64).tobytes())
        h.update(f"|{bool(self.maximize[i])}|{float(self.low[i])!r}|{float(self.high[i])!r}".encode())
        return h.hexdigest()[:20]


def prior_dataset(n_curves: int = 1000, *, seed: int = 0, seq_len: int = 100, prior: str = "reference") -> EvalDataset:
    """``n_curves`` noisy curves of a registered prior (default :class:`lcpfn.priors.ReferencePrior`),
    drawn with ``seed``. Reference curves are the paper's Table 3 setting (``kind="prior"``);
    another prior's are ``kind="synthetic"`` (scored in the same model space, without the paper's rows)."""
    import torch

    from lcpfn.priors import get_prior

    _check_positive_int(n_curves, "n_curves")
    try:
        sampler = get_prior(prior)
    except (KeyError, ValueError) as exc:
        raise InputError(str(exc)) from None
    g = torch.Generator().manual_seed(int(seed))
    batch = sampler.sample(int(n_curves), seq_len=int(seq_len), generator=g)
    values = batch.values.double().numpy()
    cls = type(sampler).__name__
    reference = prior == "reference"
    return _unit_dataset(
        values,
        name=f"prior(seed={seed})" if reference else f"{prior} prior(seed={seed})",
        prefix="prior" if reference else prior,
        notes=f"{n_curves} noisy curves of lcpfn.priors.{cls}, torch.Generator seed {seed}, {seq_len} epochs",
        kind="prior" if reference else "synthetic",
    )


def _unit_dataset(
    values: np.ndarray, *, name: str, prefix: str, notes: str, kind: Literal["prior", "synthetic"] = "prior"
) -> EvalDataset:
    n = values.shape[0]
    return EvalDataset(
        name=name,
        kind=kind,
        curves=tuple(np.array(v, dtype=np.float64) for v in values),
        ids=tuple(f"{prefix}-{i}" for i in range(n)),
        maximize=np.ones(n, dtype=bool),
        low=np.zeros(n),
        high=np.ones(n),
        notes=notes,
    )


_NPZ_KEYS = ("noisy", "values", "curves", "y")


def npz_dataset(path: str | Path, *, n_curves: int | None = None, split: str = "all") -> EvalDataset:
    """Curves from an ``.npz`` file.

    Either a file of unit-interval prior curves (a 2-D array under ``noisy``, ``values``, ``curves``
    or ``y``, e.g. ``tests/fixtures/reference_prior.npz`` drawn by the reference package's own
    sampler), or a file in the shared real-curve format (``values``, ``lengths``,
    ``higher_is_better``, ...), which is loaded as by :func:`real_datasets`.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"curve file {str(path)!r} does not exist")
    try:
        z = np.load(p, allow_pickle=False)
        files = set(z.files)
    except (OSError, ValueError) as exc:
        raise InputError(f"curve file {str(path)!r} is not a readable .npz file: {exc}") from None
    if {"values", "lengths", "higher_is_better"} <= files:
        return _load_real_file(p, source=p.stem, split=split, n_curves=n_curves)
    key = next((k for k in _NPZ_KEYS if k in files), None)
    if key is None:
        raise InputError(
            f"curve file {str(path)!r} has none of the arrays {list(_NPZ_KEYS)} (it has {sorted(files)})"
        )
    values = np.asarray(z[key], dtype=np.float64)
    if values.ndim != 2 or values.shape[1] < 2 or not np.all(np.isfinite(values)):
        raise InputError(
            f"array {key!r} of {str(path)!r} must be finite with shape (n_curves, length >= 2), got {values.shape}"
        )
    if n_curves is not None:
        _check_positive_int(n_curves, "n_curves")
        values = values[:n_curves]
    return _unit_dataset(
        values,
        name=f"npz:{p.name}",
        prefix=p.stem,
        notes=f"first {values.shape[0]} curves of array {key!r} in {p.name}",
    )


def _order_key(curve_id: str) -> str:
    """A deterministic shuffle: curves sorted by the hash of their id (independent of the others)."""
    return hashlib.sha256(curve_id.encode()).hexdigest()


def _metric_range(metric: str, higher_is_better: bool, values: np.ndarray) -> tuple[float, float] | None:
    """``(low, high)`` of a metric with a known range, or None for an unbounded loss."""
    m = metric.lower()
    if "acc" in m:  # accuracy: a fraction, or a percentage when the name or the values say so
        return (0.0, 100.0) if ("%" in m or "percent" in m or np.nanmax(values) > 1.5) else (0.0, 1.0)
    if not higher_is_better:
        return None
    raise _Skip(f"metric {metric!r} is higher-is-better with no known range")


class _Skip(Exception):
    pass


def _load_real_file(
    path: Path,
    *,
    source: str,
    split: str,
    n_curves: int | None,
    min_length: int = MIN_LENGTH,
) -> EvalDataset:
    """One source file in the shared format (see ``/work/shared/data/README.md``) as a dataset.

    Dropped, and counted in ``notes``: curves shorter than ``min_length``, curves with a
    non-finite value (the source recorded a divergence), losses that ever exceed
    ``DIVERGENCE_FACTOR`` times their first value (diverged), and metrics that are
    higher-is-better without a known range. The kept curves are ordered by the hash of their id
    (a fixed shuffle) and the first ``n_curves`` of the requested split are used.
    """
    if split not in ("dev", "holdout", "all"):
        raise InputError(f"split must be 'dev', 'holdout' or 'all', but got {split!r}")
    try:
        z = np.load(path, allow_pickle=False)
        values, lengths = z["values"], z["lengths"]
        hib = z["higher_is_better"]
        metric, task, config = z["metric"], z["task"], z["config_id"]
        src = z["source"] if "source" in z.files else np.array([source] * len(lengths))
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"{str(path)!r} is not a curve file in the shared format: {exc}") from None
    drops: dict[str, int] = {}
    kept: list[tuple[str, np.ndarray, bool, float, float]] = []
    for i in range(len(lengths)):
        n_pts = int(lengths[i])
        y = np.asarray(values[i, :n_pts], dtype=np.float64)
        cid = str(config[i])
        if split != "all" and split_of(str(src[i]), cid) != split:
            continue
        reason = None
        try:
            rng = _metric_range(str(metric[i]), bool(hib[i]), y)
        except _Skip:
            rng, reason = None, "metric without a known range"
        if reason is None and n_pts < min_length:
            reason = f"shorter than {min_length} points"
        elif reason is None and not np.all(np.isfinite(y)):
            reason = "non-finite values (diverged)"
        elif reason is None and rng is None and (y[0] <= 0 or np.max(y) > DIVERGENCE_FACTOR * y[0]):
            reason = f"loss above {DIVERGENCE_FACTOR:g}x its first value (diverged)"
        if reason is not None:
            drops[reason] = drops.get(reason, 0) + 1
            continue
        low, high = rng if rng is not None else (0.0, math.nan)
        curve_id = f"{task[i]}/{cid}/{metric[i]}"
        kept.append((curve_id, y, bool(hib[i]), low, high))
    if not kept:
        raise InputError(f"no usable curves in {str(path)!r} for split {split!r} (dropped: {drops or 'none'})")
    kept.sort(key=lambda k: _order_key(k[0]))
    total = len(kept)
    if n_curves is not None:
        _check_positive_int(n_curves, "n_curves")
        kept = kept[:n_curves]
    dropped = ", ".join(f"{v} {k}" for k, v in sorted(drops.items())) or "none"
    notes = (
        f"{path.name}: split {split!r}, {len(kept)} of {total} usable curves (fixed shuffle by id hash); "
        f"dropped: {dropped}"
    )
    return EvalDataset(
        name=source,
        kind="real",
        curves=tuple(k[1] for k in kept),
        ids=tuple(k[0] for k in kept),
        maximize=np.array([k[2] for k in kept]),
        low=np.array([k[3] for k in kept]),
        high=np.array([k[4] for k in kept]),
        split=split,
        notes=notes,
    )


def default_data_dir() -> Path | None:
    """``../shared/data`` relative to the working directory, if it exists."""
    p = Path.cwd().parent / "shared" / "data"
    return p if p.is_dir() else None


def real_datasets(
    data_dir: str | Path,
    *,
    sources: Sequence[str] | None = None,
    split: Literal["dev", "holdout", "all"] = "dev",
    n_curves: int | None = None,
    min_length: int = MIN_LENGTH,
) -> list[EvalDataset]:
    """One dataset per source directory ``data_dir/<source>/*.npz`` (the shared real-curve format).

    ``sources``: directory names (default :data:`DEFAULT_SOURCES`; ``["all"]`` for every one
    found). ``n_curves`` caps the curves per source. See :func:`_load_real_file` for what is dropped.
    Points are taken as equally spaced epochs, whatever their ``steps`` (TaskSet evaluates every
    200 steps; Pythia's log-spaced checkpoints and LCDB's training-set sizes are not epochs).
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise InputError(f"data directory {str(data_dir)!r} does not exist")
    available = sorted(p.name for p in root.iterdir() if p.is_dir() and any(p.glob("*.npz")))
    if sources is None:
        wanted = [s for s in DEFAULT_SOURCES if s in available] or available
    elif list(sources) == ["all"]:
        wanted = available
    else:
        wanted = list(sources)
        unknown = [s for s in wanted if s not in available]
        if unknown:
            raise InputError(f"unknown source(s) {unknown} in {str(root)!r}; available: {available}")
    if not wanted:
        raise InputError(f"no sources with .npz files in {str(root)!r}")
    out = []
    for s in wanted:
        for f in sorted((root / s).glob("*.npz")):
            name = s if len(list((root / s).glob("*.npz"))) == 1 else f"{s}/{f.stem}"
            ds = _load_real_file(f, source=s, split=split, n_curves=n_curves, min_length=min_length)
            out.append(replace(ds, name=name))
    return out
