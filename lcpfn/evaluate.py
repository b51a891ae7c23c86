"""The evaluation harness: the paper's extrapolation benchmark, for any set of forecasters.

Protocol (Adriaensen et al. 2023, §4.1): for every curve of length ``L`` and every cutoff fraction
``f`` (10, 20, 40, 80 %), the forecaster observes the noisy values ``y_1 .. y_c`` with
``c = round(f L)`` (at least 1, at most ``L - 1``) and forecasts epochs ``c+1 .. L``
(``max_epochs = L``). Its scores (:mod:`lcpfn.metrics`) are the mean log density of the true
values, the MSE of the predictive median and the coverage of the central 90 % interval, averaged
over curves; its cost is the wall-clock seconds of ``predict`` per curve, after one untimed
warm-up forecast per forecaster and run (so that lazy setup, such as PyMC's compilation, is not
charged to the first curves).

Everything is scored in the **normalised** space the paper reports in: increasing curves in about
``[0, 1]``. Each curve carries its own map into that space (:class:`EvalDataset`):

* prior curves are already there;
* metrics with a known range (accuracies in ``[0, 1]`` or in %) are mapped by those bounds, flipped
  when lower is better; for those, the score equals that of ``predict(raw, direction=..., bounds=...)``
  plus ``log(high - low)`` in LL (a test checks it);
* losses (no upper bound) are mapped per curve *and cutoff* by ``z = 1 - y / max(y_1..y_c)``: the
  lower bound ``0`` of a loss and the largest loss observed so far, so nothing after the cutoff
  leaks into the normalisation.

With ``inputs="raw"`` (``--inputs raw``) forecasters get the prefix in the curve's own units with its
direction and known bounds (a loss: ``(0, None)``) and map it themselves, as for a user; the scores
are taken into the same normalised units through the exact Jacobian of the map above.

Forecasters are named by spec strings (:func:`build_forecaster`): ``pfn:NAME_OR_DIR``, ``mcmc``,
``last``, ``pow3``, with constructor options after a colon (``mcmc:draws=200,chains=2``), an
optional label (``P1=pfn:path/to/ckpt``) and an optional curve cap (``mcmc@5``: the first 5 curves
of every dataset). Results are cached per (forecaster, curve, cutoff) in a JSONL file, appended
after every chunk, so an interrupted sweep resumes where it stopped; the cache key holds a hash
of the forecaster's weights and code and of the curve's values, so a new model or changed data is
never served stale numbers.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import inspect
import json
import logging
import math
import os
import platform
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Literal, Sequence

import numpy as np

from lcpfn.errors import InputError, LCPFNError
from lcpfn.metrics import mean_and_se, score

__all__ = [
    "CUTOFFS",
    "PAPER_TABLE3",
    "EvalDataset",
    "Forecaster",
    "CurveResult",
    "SummaryRow",
    "cutoff_index",
    "prior_dataset",
    "npz_dataset",
    "real_datasets",
    "split_of",
    "build_forecaster",
    "evaluate",
    "summarize",
    "format_markdown",
    "write_report",
    "describe_machine",
    "add_cli",
]

log = logging.getLogger(__name__)

CUTOFFS: tuple[float, ...] = (0.1, 0.2, 0.4, 0.8)
"""The paper's cutoffs, as fractions of each curve's length."""

CACHE_VERSION = 2
LEVEL = 0.9
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)  # stored for the curves drawn in fan charts


@dataclass(frozen=True)
class PaperRow:
    """One row of the paper's Table 3 (LL on 10,000 prior curves; one Xeon Gold 6242 core)."""

    label: str
    method: str
    ll: tuple[float, float, float, float]  # at CUTOFFS
    seconds_per_curve: float


PAPER_TABLE3: tuple[PaperRow, ...] = (
    PaperRow("M1", "MCMC (emcee), Domhan's settings: 2000 samples, 100 walkers, burn-in 500", (1.628, 1.939, 2.265, 2.469), 54.4),
    PaperRow("M3", "MCMC, best: 4000 samples, 100 walkers, burn-in 500", (1.642, 1.956, 2.285, 2.486), 103.2),
    PaperRow("P1", "PFN, 3 layers, emsize 128, 10M curves", (1.58, 1.99, 2.28, 2.43), 0.004),
    PaperRow("P2", "PFN, 3 layers, emsize 256, 10M curves", (1.65, 2.04, 2.35, 2.49), 0.006),
    PaperRow("P3", "PFN, 12 layers, emsize 512, 26M params, 10M curves", (1.76, 2.13, 2.40, 2.52), 0.050),
)  # fmt: skip


def cutoff_index(length: int, fraction: float) -> int:
    """Observed epochs ``c`` at cutoff ``fraction`` of a curve of ``length`` epochs.

    ``round(fraction * length)`` (halves up), clipped to ``[1, length - 1]``: 100 epochs give
    10/20/40/80, 52 give 5/10/21/42.
    """
    c = int(math.floor(fraction * length + 0.5))
    return min(max(c, 1), length - 1)


def _check_cutoffs(cutoffs: Iterable[float]) -> tuple[float, ...]:
    out = []
    for f in cutoffs:
        if isinstance(f, bool) or not isinstance(f, (int, float)) or not (0.0 < f < 1.0):
            raise InputError(f"every cutoff must be a fraction in (0, 1), but got {f!r}")
        out.append(float(f))
    if not out:
        raise InputError("cutoffs must not be empty")
    return tuple(out)


# ================================================================================================
# datasets
# ================================================================================================
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
                raise InputError(f"dataset {self.name!r}: curve {self.ids[i]!r} must be finite and 1-D with >= 2 points")

    def __len__(self) -> int:
        return len(self.curves)

    @property
    def lengths(self) -> np.ndarray:
        return np.array([len(y) for y in self.curves])

    def head(self, n: int | None) -> "EvalDataset":
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
        raise InputError(f"array {key!r} of {str(path)!r} must be finite with shape (n_curves, length >= 2), got {values.shape}")
    if n_curves is not None:
        _check_positive_int(n_curves, "n_curves")
        values = values[:n_curves]
    return _unit_dataset(
        values,
        name=f"npz:{p.name}",
        prefix=p.stem,
        notes=f"first {values.shape[0]} curves of array {key!r} in {p.name}",
    )


# --- real curves -------------------------------------------------------------------------------
DEFAULT_SOURCES = ("lcbench_surrogate", "taskset_dpl")
"""The real sources evaluated by default: the two shaped like the paper's benchmarks (LCBench, TaskSet)."""

HOLDOUT_FRACTION = 0.3
MIN_LENGTH = 10
DIVERGENCE_FACTOR = 10.0


def split_of(source: str, config_id: str, *, holdout_fraction: float = HOLDOUT_FRACTION) -> Literal["dev", "holdout"]:
    """The split of a real curve: a hash of its source and configuration id, so a configuration
    is in the same split on every task and in every run. About ``holdout_fraction`` of the
    configurations are ``"holdout"``: never tune on them."""
    digest = hashlib.sha256(f"{source}\x00{config_id}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    return "holdout" if u < holdout_fraction else "dev"


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


# ================================================================================================
# forecasters
# ================================================================================================
_LIB_DIR = Path(__file__).resolve().parent
_COMMON_CODE = ("forecast.py", "validation.py", "metrics.py")
_KIND_CODE = {
    "pfn": ("predictor.py", "model.py", "bar_distribution.py"),
    "mcmc": ("mcmc.py",),
    "last": ("baselines.py",),
    "pow3": ("baselines.py",),
}
_DEFAULT_CHUNK = {"pfn": 256, "mcmc": 1, "last": 256, "pow3": 16}


@dataclass(frozen=True, eq=False)
class Forecaster:
    """A predictor with a label, a cache key and how to feed it.

    ``predictor`` has ``predict(curves (n, c), *, max_epochs, direction, bounds) -> Forecast``.
    ``key`` identifies its weights and code in the cache; ``max_curves`` caps the curves it is
    evaluated on per dataset (the first ones); ``chunk_size`` curves go into one ``predict`` call
    (and between two cache writes).
    """

    label: str
    predictor: Any
    key: str
    max_curves: int | None = None
    chunk_size: int = 256


_SPEC = re.compile(r"^(?:(?P<label>[^=:@]+)=)?(?P<kind>[A-Za-z0-9_]+)(?::(?P<arg>.*?))?(?:@(?P<cap>\d+))?$")


def _parse_value(text: str) -> Any:
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low == "none":
        return None
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text


def _parse_options(arg: str | None, spec: str) -> dict[str, Any]:
    if not arg:
        return {}
    out = {}
    for part in arg.split(","):
        if "=" not in part:
            raise InputError(f"forecaster {spec!r}: options must look like key=value, but got {part!r}")
        k, v = part.split("=", 1)
        out[k.strip()] = _parse_value(v.strip())
    return out


def build_forecaster(spec: str, *, chunk_size: int | None = None) -> Forecaster:
    """A :class:`Forecaster` from a spec string ``[LABEL=]KIND[:ARG][@N]``.

    * ``pfn:NAME_OR_DIR``: ``LCPFN.from_pretrained(NAME_OR_DIR)`` (``pfn`` alone: the default model);
    * ``mcmc[:key=value,...]``: :class:`lcpfn.mcmc.MCMCPredictor` (``seed=0`` unless given);
    * ``last[:...]``, ``pow3[:...]``: the baselines of :mod:`lcpfn.baselines`;
    * ``@N``: evaluate this forecaster on the first ``N`` curves of each dataset only.
    """
    if not isinstance(spec, str):
        raise InputError(f"a forecaster spec must be a string, but got {spec!r}")
    m = _SPEC.match(spec.strip())
    if m is None:
        raise InputError(f"cannot parse forecaster spec {spec!r}; expected e.g. pfn:reference, mcmc@5, last, pow3")
    kind, arg = m["kind"].lower(), m["arg"]
    cap = int(m["cap"]) if m["cap"] else None
    if cap is not None and cap < 1:
        raise InputError(f"forecaster {spec!r}: the curve cap @N must be at least 1 but got {cap}")
    if kind == "pfn":
        from lcpfn.predictor import LCPFN

        name = arg or "default"
        predictor = LCPFN.from_pretrained(name)
        weights = _state_hash(predictor)
        label = m["label"] or f"pfn:{name}"
        ident = f"pfn|{weights}"
    elif kind in ("mcmc", "last", "pow3"):
        opts = _parse_options(arg, spec)
        try:
            if kind == "mcmc":
                from lcpfn.mcmc import MCMCPredictor

                predictor = MCMCPredictor(**{"seed": 0, **opts})
            else:
                from lcpfn.baselines import LastValuePredictor, Pow3FitPredictor

                predictor = (LastValuePredictor if kind == "last" else Pow3FitPredictor)(**opts)
        except TypeError as exc:
            raise InputError(f"forecaster {spec!r}: bad option: {exc}") from None
        label = m["label"] or (kind if not arg else f"{kind}:{arg}")
        ident = f"{kind}|{json.dumps(_jsonable(opts), sort_keys=True)}|{repr(predictor)}"
    else:
        raise InputError(f"unknown forecaster kind {kind!r} in {spec!r}; known: pfn, mcmc, last, pow3")
    key = _code_hash(_COMMON_CODE + _KIND_CODE[kind], ident)
    size = chunk_size if chunk_size is not None else _DEFAULT_CHUNK[kind]
    _check_positive_int(size, "chunk_size")
    return Forecaster(label=label, predictor=predictor, key=key, max_curves=cap, chunk_size=size)


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (v if isinstance(v, (int, float, str, bool, type(None))) else repr(v)) for k, v in d.items()}


def _state_hash(model: Any) -> str:
    """Hash of a PFN's weights, bin borders and config."""
    h = hashlib.sha256()
    h.update(json.dumps(getattr(model, "config", {}), sort_keys=True, default=str).encode())
    for mod in (model.model, model.bar):
        for k, v in sorted(mod.state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:20]


def _code_hash(files: Sequence[str], ident: str) -> str:
    h = hashlib.sha256(f"v{CACHE_VERSION}|{ident}".encode())
    for f in sorted(set(files)):
        p = _LIB_DIR / f
        h.update(f.encode())
        h.update(p.read_bytes() if p.is_file() else b"<missing>")
    return h.hexdigest()[:20]


def forecaster_from_predictor(
    label: str, predictor: Any, *, key: str | None = None, max_curves: int | None = None, chunk_size: int = 256
) -> Forecaster:
    """Wrap any object with the ``predict`` signature. Without ``key`` the cache key is built from
    ``label``, ``repr(predictor)`` and the source file of its class: give a key that changes
    whenever its forecasts would."""
    if not callable(getattr(predictor, "predict", None)):
        raise InputError(f"forecaster {label!r} has no predict method")
    if key is None:
        try:
            src = Path(inspect.getfile(type(predictor))).read_bytes()
        except (TypeError, OSError):
            src = b""
        key = hashlib.sha256(f"{label}|{predictor!r}|".encode() + src).hexdigest()[:20]
        key = _code_hash(_COMMON_CODE, key)
    _check_positive_int(chunk_size, "chunk_size")
    return Forecaster(label=label, predictor=predictor, key=key, max_curves=max_curves, chunk_size=chunk_size)


# ================================================================================================
# evaluation
# ================================================================================================
@dataclass(frozen=True)
class CurveResult:
    """The scores of one forecaster on one curve at one cutoff (normalised units).

    ``seconds``: wall clock of the ``predict`` call this curve was part of, divided by its curves;
    ``cpu_seconds``: the same for this process's CPU time (all threads; steadier on a shared machine).
    ``error``: why the forecaster rejected the curve (then the scores are NaN). ``bands``: the
    forecast's quantiles :data:`QUANTILES` per future epoch, kept for the curves in fan charts.
    """

    forecaster: str
    dataset: str
    split: str
    curve: str
    index: int
    cutoff: float
    observed: int
    length: int
    ll: float
    mse: float
    coverage: float
    seconds: float
    cpu_seconds: float = math.nan
    error: str | None = None
    bands: dict[str, list[float]] | None = field(default=None, compare=False)


class ResultCache:
    """Per-(forecaster, curve, cutoff) results in a JSONL file, appended after every chunk.

    A line that cannot be parsed (an interrupted write) is ignored; the next append starts on a
    fresh line. ``path=None`` keeps results in memory only.
    """

    def __init__(self, path: str | Path | None) -> None:
        self.path = None if path is None else Path(path)
        self._rows: dict[str, dict[str, Any]] = {}
        if self.path is not None and self.path.is_file():
            with open(self.path, encoding="utf-8") as f:
                for line in f:
                    try:
                        row = json.loads(line)
                        self._rows[row["key"]] = row
                    except (json.JSONDecodeError, KeyError, TypeError):
                        continue

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, key: str) -> bool:
        return key in self._rows

    def get(self, key: str) -> dict[str, Any] | None:
        return self._rows.get(key)

    def add(self, rows: Sequence[dict[str, Any]]) -> None:
        for r in rows:
            self._rows[r["key"]] = r
        if self.path is None or not rows:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        needs_newline = self.path.is_file() and self.path.stat().st_size > 0 and not _ends_with_newline(self.path)
        text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(("\n" if needs_newline else "") + text)
            f.flush()
            os.fsync(f.fileno())


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def _key(fc_key: str, curve_key: str, c: int, length: int) -> str:
    return f"{fc_key}|{curve_key}|{c}/{length}|{LEVEL}"


def evaluate(
    forecasters: Sequence[Forecaster],
    datasets: Sequence[EvalDataset],
    *,
    cutoffs: Sequence[float] = CUTOFFS,
    cache: str | Path | None = None,
    plot_curves: int = 4,
    progress: bool = False,
    inputs: Literal["normalised", "raw"] = "normalised",
) -> list[CurveResult]:
    """Score every forecaster on every curve of every dataset at every cutoff.

    ``inputs="normalised"`` (the paper's protocol) gives each forecaster the prefix in the
    normalised space. ``inputs="raw"`` gives it the prefix in the curve's own units, with its
    direction and what is known of its range (:meth:`EvalDataset.raw_bounds`: a loss gets
    ``(0, None)``), exactly as a user calls ``predict``; the forecaster maps it with its own
    normalisation and the scores are taken back into the same normalised units through the
    exact affine Jacobian (LL ``+ log(high - low)``, MSE ``/ (high - low)^2``), so the two modes'
    numbers are comparable and differ only by what the forecaster does with raw input.

    Cached results (``cache``, a JSONL path) are reused and new ones appended after every
    ``predict`` call. A curve a forecaster rejects with an :class:`~lcpfn.errors.LCPFNError`
    (e.g. a value outside the range it forecasts) is recorded with ``error`` set; any other
    exception propagates (what was computed so far stays cached). The quantile bands of the
    first ``plot_curves`` curves of each dataset are kept for fan charts.
    """
    from tqdm import tqdm

    cutoffs = _check_cutoffs(cutoffs)
    if not forecasters or not datasets:
        raise InputError("evaluate needs at least one forecaster and one dataset")
    labels = [f.label for f in forecasters]
    if len(set(labels)) != len(labels):
        raise InputError(f"forecaster labels must be unique, but got {labels}; name them like LABEL=pfn:path")
    if inputs not in ("normalised", "raw"):
        raise InputError(f"inputs must be 'normalised' or 'raw', but got {inputs!r}")
    store = ResultCache(cache)
    results: list[CurveResult] = []
    for fc in forecasters:
        if inputs == "raw":  # other numbers: another cache key (normalised keys stay as they were)
            fc = replace(fc, key=f"{fc.key}|raw")
        work = []  # (dataset, indices, fraction) still to compute
        for ds in datasets:
            sub = ds.head(fc.max_curves)
            keys = [sub.curve_key(i) for i in range(len(sub))]
            for frac in cutoffs:
                todo = []
                for i in range(len(sub)):
                    length = len(sub.curves[i])
                    c = cutoff_index(length, frac)
                    row = store.get(_key(fc.key, keys[i], c, length))
                    if row is None or (i < plot_curves and row.get("bands") is None and row.get("error") is None):
                        todo.append(i)
                work.append((sub, keys, frac, todo))
        total = sum(len(w[3]) for w in work)
        if total:
            _warm_up(fc)
        with tqdm(total=total, desc=fc.label, unit="curve", disable=not progress or total == 0, leave=False) as bar:
            for sub, keys, frac, todo in work:
                by_length: dict[int, list[int]] = {}
                for i in todo:
                    by_length.setdefault(len(sub.curves[i]), []).append(i)
                for length, idx in sorted(by_length.items()):
                    for start in range(0, len(idx), fc.chunk_size):
                        chunk = idx[start : start + fc.chunk_size]
                        if inputs == "raw":
                            rows = []
                            for group in _raw_groups(sub, chunk):
                                rows += _run_chunk(fc, sub, keys, group, frac, plot_curves, raw=True)
                        else:
                            good, suspect = _screen(sub, chunk, frac)
                            rows = _run_chunk(fc, sub, keys, good, frac, plot_curves) if good else []
                            for i in suspect:
                                rows += _run_chunk(fc, sub, keys, [i], frac, plot_curves)
                        store.add(rows)
                        bar.update(len(chunk))
        for sub, keys, frac, _ in work:
            for i in range(len(sub)):
                length = len(sub.curves[i])
                c = cutoff_index(length, frac)
                row = store.get(_key(fc.key, keys[i], c, length))
                assert row is not None  # computed above
                results.append(
                    CurveResult(
                        forecaster=fc.label,
                        dataset=sub.name,
                        split=sub.split,
                        curve=sub.ids[i],
                        index=i,
                        cutoff=frac,
                        observed=c,
                        length=length,
                        ll=_num(row["ll"]),
                        mse=_num(row["mse"]),
                        coverage=_num(row["coverage"]),
                        seconds=_num(row["seconds"]),
                        cpu_seconds=_num(row.get("cpu_seconds")),
                        error=row.get("error"),
                        bands=row.get("bands") if i < plot_curves else None,
                    )
                )
    return results


def _num(v: Any) -> float:
    return math.nan if v is None else float(v)


def _screen(ds: EvalDataset, idx: list[int], frac: float) -> tuple[list[int], list[int]]:
    """Split ``idx`` into curves the shared input validation accepts and those it would reject
    (:func:`lcpfn.validation.unit_transform`: a prefix far outside ``[0, 1]``), so a rejected curve
    is forecast alone and does not break up the batch whose time is measured."""
    from lcpfn.validation import unit_transform

    good, suspect = [], []
    for i in idx:
        obs, _ = ds.normalised(i, cutoff_index(len(ds.curves[i]), frac))
        try:
            unit_transform(obs[None, :], direction="maximize", bounds=None)
        except LCPFNError:
            suspect.append(i)
        else:
            good.append(i)
    return good, suspect


def _raw_groups(ds: EvalDataset, idx: list[int]) -> list[list[int]]:
    """``idx`` split by direction and known bounds: one ``predict`` call per group in raw mode."""
    groups: dict[tuple[bool, tuple[float, float | None]], list[int]] = {}
    for i in idx:
        groups.setdefault((bool(ds.maximize[i]), ds.raw_bounds(i)), []).append(i)
    return list(groups.values())


def _run_chunk(
    fc: Forecaster, ds: EvalDataset, keys: list[str], idx: list[int], frac: float, plot_curves: int,
    *, raw: bool = False,
) -> list[dict[str, Any]]:
    """Forecast curves ``idx`` (all of one length) at cutoff ``frac``; one cache row per curve.

    ``raw``: feed the curves in their own units with their direction and known bounds (all the
    same within ``idx``, see :func:`_raw_groups`) and score in the normalised units.
    A chunk the forecaster rejects is split in halves until the rejected curves are isolated,
    so one bad curve costs ``O(log n)`` extra calls, not a call per curve.
    """
    length = len(ds.curves[idx[0]])
    c = cutoff_index(length, frac)
    if raw:
        obs = np.stack([ds.curves[i][:c] for i in idx])
        fut = np.stack([ds.curves[i][c:] for i in idx])
        direction = "maximize" if ds.maximize[idx[0]] else "minimize"
        bounds: Any = ds.raw_bounds(idx[0])
    else:
        pairs = [ds.normalised(i, c) for i in idx]
        obs = np.stack([p[0] for p in pairs])  # (n, c)
        fut = np.stack([p[1] for p in pairs])  # (n, L - c)
        direction, bounds = "maximize", None
    started, cpu_started = time.perf_counter(), time.process_time()
    try:
        forecast = fc.predictor.predict(obs, max_epochs=length, direction=direction, bounds=bounds)
    except LCPFNError as exc:
        if len(idx) > 1:
            half = len(idx) // 2
            return _run_chunk(fc, ds, keys, idx[:half], frac, plot_curves, raw=raw) + _run_chunk(
                fc, ds, keys, idx[half:], frac, plot_curves, raw=raw
            )
        log.info("%s rejected curve %s at %d/%d: %s", fc.label, ds.ids[idx[0]], c, length, exc)
        return [_row(fc, keys[idx[0]], c, length, error=str(exc))]
    seconds = (time.perf_counter() - started) / len(idx)
    cpu_seconds = (time.process_time() - cpu_started) / len(idx)
    s = score(forecast, fut, level=LEVEL)
    ll, mse = np.asarray(s.log_likelihood, dtype=np.float64), np.asarray(s.squared_error, dtype=np.float64)
    # raw -> normalised: z = sign (y - low) / (high - low) + const, per curve
    maps = [ds.normaliser(i, c) for i in idx] if raw else []
    if raw:  # densities and errors in normalised units: the exact Jacobian of that affine map
        width = np.array([hi - lo for lo, hi, _ in maps])
        ll, mse = ll + np.log(width), mse / width**2
    plotted = [j for j, i in enumerate(idx) if i < plot_curves]
    if plotted:
        qs = {q: np.atleast_2d(forecast.quantile(q)) for q in QUANTILES}
    rows = []
    for j, i in enumerate(idx):
        bands = None
        if j in plotted:
            bands = {}
            for q in QUANTILES:
                if raw:  # the q-quantile of z is the map of y's q- (maximize) or (1-q)-quantile
                    lo, hi, sign = maps[j]
                    yq = qs[q][j] if sign > 0 else qs[round(1.0 - q, 6)][j]
                    zq = (yq - lo) / (hi - lo) if sign > 0 else (hi - yq) / (hi - lo)
                else:
                    zq = qs[q][j]
                bands[f"{q:g}"] = [round(float(v), 6) for v in zq]
        rows.append(
            _row(
                fc, keys[i], c, length,
                ll=float(ll[j]), mse=float(mse[j]), coverage=float(s.coverage[j]),
                seconds=seconds, cpu_seconds=cpu_seconds, bands=bands,
            )
        )  # fmt: skip
    return rows


def _warm_up(fc: Forecaster) -> None:
    """One untimed forecast of a short curve, so that no curve's time includes one-time setup.

    The first call of a process pays for lazy initialisation (torch's thread pool and kernels,
    PyMC's compilation of the model and NUTS step: about 14 s); without this, the first chunk's
    curves would carry it. Errors are left to the timed calls.
    """
    try:
        fc.predictor.predict(np.linspace(0.2, 0.4, 5)[None, :], max_epochs=10, direction="maximize", bounds=None)
    except Exception as exc:  # noqa: BLE001 - only a warm-up; the real calls report errors
        log.debug("%s: warm-up forecast failed: %s", fc.label, exc)


def _row(fc: Forecaster, curve_key: str, c: int, length: int, *, ll=None, mse=None, coverage=None,
         seconds=None, cpu_seconds=None, error: str | None = None, bands=None) -> dict[str, Any]:  # fmt: skip
    def clean(v):  # strict JSON has no NaN or inf: NaN -> null, +-inf -> +-1e300
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return None
        if isinstance(v, float) and math.isinf(v):
            return -1e300 if v < 0 else 1e300
        return v

    return {
        "key": _key(fc.key, curve_key, c, length),
        "forecaster": fc.label,
        "observed": c,
        "length": length,
        "ll": clean(ll),
        "mse": clean(mse),
        "coverage": clean(coverage),
        "seconds": clean(seconds),
        "cpu_seconds": clean(cpu_seconds),
        "error": error,
        "bands": bands,
    }


# ================================================================================================
# summaries and reports
# ================================================================================================
@dataclass(frozen=True)
class SummaryRow:
    """Scores of one forecaster on one dataset at one cutoff, averaged over the scored curves."""

    forecaster: str
    dataset: str
    split: str
    cutoff: float
    n_curves: int
    n_failed: int
    ll: float
    ll_se: float
    ll_median: float
    mse: float
    coverage: float
    seconds_per_curve: float
    cpu_seconds_per_curve: float


def summarize(results: Sequence[CurveResult], *, first_n: int | None = None) -> list[SummaryRow]:
    """Mean scores per (forecaster, dataset, cutoff), in first-seen order.

    ``first_n``: only curves with index below it (the subset every forecaster saw when some were
    capped with ``@N``). Rejected curves are counted in ``n_failed`` and left out of the means.
    """
    groups: dict[tuple[str, str, float], list[CurveResult]] = {}
    for r in results:
        if first_n is not None and r.index >= first_n:
            continue
        groups.setdefault((r.forecaster, r.dataset, r.cutoff), []).append(r)
    out = []
    for (fc, ds, frac), rows in groups.items():
        ok = [r for r in rows if r.error is None]
        nan = math.nan
        if ok:
            ll = np.array([r.ll for r in ok])
            ll_mean, ll_se = mean_and_se(ll)
            mse = float(np.mean([r.mse for r in ok]))
            cov = float(np.mean([r.coverage for r in ok]))
            sec = float(np.mean([r.seconds for r in ok]))
            cpu = float(np.mean([r.cpu_seconds for r in ok]))
            med = float(np.median(ll))
        else:
            ll_mean = ll_se = mse = cov = sec = cpu = med = nan
        out.append(
            SummaryRow(
                forecaster=fc, dataset=ds, split=rows[0].split, cutoff=frac, n_curves=len(ok),
                n_failed=len(rows) - len(ok), ll=ll_mean, ll_se=ll_se, ll_median=med, mse=mse,
                coverage=cov, seconds_per_curve=sec, cpu_seconds_per_curve=cpu,
            )
        )  # fmt: skip
    return out


@dataclass(frozen=True)
class HeadToHead:
    """Forecaster ``a`` against ``b`` on the curves and cutoffs both scored (paired)."""

    a: str
    b: str
    dataset: str
    cutoff: float
    n_curves: int
    ll_diff: float  # mean over curves of LL(a) - LL(b)
    ll_diff_se: float  # standard error of that mean (paired)
    a_wins: float  # fraction of curves where a's LL is higher
    speedup: float  # mean seconds per curve of b / of a, on these curves
    cpu_speedup: float  # the same for CPU seconds


def head_to_head(results: Sequence[CurveResult], a: str, b: str) -> list[HeadToHead]:
    """Paired comparison of forecasters ``a`` and ``b`` per (dataset, cutoff).

    Only (curve, cutoff) pairs that both scored (neither rejected) count, so the LL difference
    and the speed ratio are measured on exactly the same forecasting problems.
    """
    by_key: dict[tuple[str, str, float], dict[str, CurveResult]] = {}
    for r in results:
        if r.forecaster in (a, b) and r.error is None:
            by_key.setdefault((r.dataset, r.curve, r.cutoff), {})[r.forecaster] = r
    groups: dict[tuple[str, float], list[tuple[CurveResult, CurveResult]]] = {}
    for (ds, _, frac), pair in by_key.items():
        if a in pair and b in pair:
            groups.setdefault((ds, frac), []).append((pair[a], pair[b]))
    out = []
    for (ds, frac), pairs in groups.items():
        diff = np.array([ra.ll - rb.ll for ra, rb in pairs])
        mean, se = mean_and_se(diff)
        sec_a, sec_b = (float(np.mean([p[k].seconds for p in pairs])) for k in (0, 1))
        cpu_a, cpu_b = (float(np.mean([p[k].cpu_seconds for p in pairs])) for k in (0, 1))
        out.append(HeadToHead(
            a=a, b=b, dataset=ds, cutoff=frac, n_curves=len(pairs), ll_diff=mean, ll_diff_se=se,
            a_wins=float(np.mean(diff > 0)), speedup=sec_b / sec_a if sec_a > 0 else math.nan,
            cpu_speedup=cpu_b / cpu_a if cpu_a > 0 else math.nan,
        ))  # fmt: skip
    return sorted(out, key=lambda h: (h.dataset, h.cutoff))


def format_head_to_head(rows: Sequence[HeadToHead]) -> str:
    """Markdown table of :func:`head_to_head` rows."""
    lines = [
        "| A | B | dataset | cutoff | curves | LL(A) − LL(B) ± s.e. | A better on | speed-up of A (wall) | (CPU) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for h in rows:
        lines.append(
            f"| {h.a} | {h.b} | {h.dataset} | {h.cutoff:.0%} | {h.n_curves} | {h.ll_diff:+.3f} ± {h.ll_diff_se:.3f} | "
            f"{h.a_wins:.0%} | {h.speedup:,.0f}× | {h.cpu_speedup:,.0f}× |"
        )
    return "\n".join(lines) + "\n"


def describe_machine(threads: int | None = None) -> str:
    """CPU model, cores, torch version and threads, for the report."""
    import torch

    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    t = threads if threads is not None else torch.get_num_threads()
    return f"{model}, {os.cpu_count()} logical CPUs, torch {torch.__version__} (CPU threads: {t})"


def _fmt(v: float, digits: int = 3) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def _fmt_seconds(v: float) -> str:
    if math.isnan(v):
        return "–"
    return f"{v:.2g}" if v < 0.01 else f"{v:.3g}"


def _nanmean(values: Sequence[float]) -> float:
    a = np.asarray(values, dtype=np.float64)
    return float(np.mean(a[~np.isnan(a)])) if np.any(~np.isnan(a)) else math.nan


def _pivot(summary: Sequence[SummaryRow]) -> tuple[list[float], dict[tuple[str, str], dict[float, SummaryRow]]]:
    cutoffs = sorted({r.cutoff for r in summary})
    table: dict[tuple[str, str], dict[float, SummaryRow]] = {}
    for r in summary:
        table.setdefault((r.forecaster, r.dataset), {})[r.cutoff] = r
    return cutoffs, table


def format_markdown(
    summary: Sequence[SummaryRow],
    *,
    datasets: Sequence[EvalDataset] = (),
    paper: bool = True,
    machine: str | None = None,
    paired: Sequence[SummaryRow] | None = None,
    paired_n: int | None = None,
) -> str:
    """Markdown tables: LL (with the paper's Table 3 rows beside ours for prior datasets), MSE of
    the median, 90 % coverage, and seconds per curve."""
    cutoffs, table = _pivot(summary)
    kinds = {d.name: d for d in datasets}
    cols = " | ".join(f"{c:.0%}" for c in cutoffs)
    sep = "|---" * (len(cutoffs) + 6) + "|"
    lines = []
    if machine:
        lines += [f"Machine: {machine}.", ""]
    lines += [
        "### Log-likelihood (higher is better; mean over curves ± standard error)",
        "",
        "Curves: per dataset; rejected: curves the forecaster refused at each cutoff (left out of the means).",
        "",
        f"| forecaster | dataset | split | curves | {cols} | s / curve | CPU s / curve |",
        sep,
    ]
    for (fc, ds), row in table.items():
        cells = " | ".join(
            f"{_fmt(row[c].ll)} ± {_fmt(row[c].ll_se)}" if c in row else "–" for c in cutoffs
        )
        any_row = next(iter(row.values()))
        n = max(r.n_curves + r.n_failed for r in row.values())
        failed = [row[c].n_failed if c in row else 0 for c in cutoffs]
        n_txt = f"{n}" + (f" (rejected: {'/'.join(map(str, failed))})" if any(failed) else "")
        sec = _nanmean([r.seconds_per_curve for r in row.values()])
        cpu = _nanmean([r.cpu_seconds_per_curve for r in row.values()])
        lines.append(
            f"| {fc} | {ds} | {any_row.split} | {n_txt} | {cells} | {_fmt_seconds(sec)} | {_fmt_seconds(cpu)} |"
        )
    show_paper = paper and any(d.kind == "prior" for d in kinds.values()) and tuple(cutoffs) == CUTOFFS
    if show_paper:
        for p in PAPER_TABLE3:
            cells = " | ".join(f"{v:.3f}" for v in p.ll)
            lines.append(
                f"| paper {p.label} | paper: 10,000 prior curves | – | 10000 | {cells} | "
                f"{p.seconds_per_curve:g} (Xeon Gold 6242 core) | – |"
            )
    for title, attr, digits in (
        ("MSE of the predictive median (lower is better)", "mse", 5),
        ("Coverage of the central 90 % interval (target 0.90)", "coverage", 3),
        ("Median over curves of the per-curve LL", "ll_median", 3),
    ):
        lines += ["", f"### {title}", "", f"| forecaster | dataset | {cols} |", "|---" * (len(cutoffs) + 2) + "|"]
        for (fc, ds), row in table.items():
            cells = " | ".join(_fmt(getattr(row[c], attr), digits) if c in row else "–" for c in cutoffs)
            lines.append(f"| {fc} | {ds} | {cells} |")
    if paired:
        lines += ["", f"### Paired: the first {paired_n} curves of each dataset (seen by every forecaster)", ""]
        p_cut, p_table = _pivot(paired)
        lines += [f"| forecaster | dataset | curves | {' | '.join(f'LL {c:.0%}' for c in p_cut)} | "
                  f"{' | '.join(f'MSE {c:.0%}' for c in p_cut)} | s / curve |",
                  "|---" * (2 * len(p_cut) + 4) + "|"]  # fmt: skip
        for (fc, ds), row in p_table.items():
            ll = " | ".join(_fmt(row[c].ll) if c in row else "–" for c in p_cut)
            mse = " | ".join(_fmt(row[c].mse, 5) if c in row else "–" for c in p_cut)
            n = max(r.n_curves for r in row.values())
            sec = _nanmean([r.seconds_per_curve for r in row.values()])
            lines.append(f"| {fc} | {ds} | {n} | {ll} | {mse} | {_fmt_seconds(sec)} |")
    if datasets:
        lines += ["", "Datasets:"]
        lines += [f"- `{d.name}` ({d.kind}, split {d.split}): {d.notes}" for d in datasets]
    if show_paper:
        lines += ["", "Paper rows: Adriaensen et al. (2023), Table 3, on 10,000 prior curves; their runtimes are per curve "
                  "on one Xeon Gold 6242 core:"]
        lines += [f"- {p.label}: {p.method}" for p in PAPER_TABLE3]
    return "\n".join(lines) + "\n"


def write_csv(summary: Sequence[SummaryRow], path: str | Path) -> None:
    """The summary as CSV, one row per (forecaster, dataset, cutoff)."""
    names = list(SummaryRow.__dataclass_fields__)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(names)
        for r in summary:
            w.writerow([getattr(r, k) for k in names])


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "dataset"


def plot_fan_charts(results: Sequence[CurveResult], dataset: EvalDataset, path: str | Path) -> bool:
    """Fan charts (median and 90 % band of every forecaster) of the plotted curves of ``dataset``,
    one row per curve and one column per cutoff. Returns False if there was nothing to draw."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in results if r.dataset == dataset.name and r.bands is not None]
    if not rows:
        return False
    curves = sorted({r.index for r in rows})
    cutoffs = sorted({r.cutoff for r in rows})
    labels = list(dict.fromkeys(r.forecaster for r in rows))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, axes = plt.subplots(len(curves), len(cutoffs), figsize=(3.2 * len(cutoffs), 2.4 * len(curves)), squeeze=False)
    for a, i in enumerate(curves):
        for b, frac in enumerate(cutoffs):
            ax = axes[a, b]
            length = len(dataset.curves[i])
            c = cutoff_index(length, frac)
            obs, fut = dataset.normalised(i, c)
            t = np.arange(1, length + 1)
            ax.plot(t[:c], obs, "k.", ms=3)
            ax.plot(t[c:], fut, ".", color="0.6", ms=3)
            for k, lab in enumerate(labels):
                hit = [r for r in rows if r.index == i and r.cutoff == frac and r.forecaster == lab]
                if not hit or hit[0].bands is None:
                    continue
                bands = hit[0].bands
                col = colors[k % len(colors)]
                ax.fill_between(t[c:], bands["0.05"], bands["0.95"], color=col, alpha=0.18, lw=0)
                ax.plot(t[c:], bands["0.5"], "-", color=col, lw=1.2, label=f"{lab} (LL {hit[0].ll:.2f})")
            ax.axvline(c + 0.5, color="0.8", lw=0.8)
            name = dataset.ids[i] if len(dataset.ids[i]) <= 28 else "…" + dataset.ids[i][-27:]
            ax.set_title(f"{name} @ {frac:.0%}", fontsize=7)
            ax.tick_params(labelsize=7)
            ax.legend(fontsize=6, loc="lower right")
    fig.suptitle(f"{dataset.name}: median and 90 % band (normalised units); grey: the truth", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_ll_vs_runtime(summary: Sequence[SummaryRow], dataset: EvalDataset, path: str | Path, *, paper: bool = True) -> bool:
    """LL against seconds per curve (log axis), one panel per cutoff, like the paper's Figure 3."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in summary if r.dataset == dataset.name and not math.isnan(r.ll)]
    if not rows:
        return False
    cutoffs = sorted({r.cutoff for r in rows})
    labels = list(dict.fromkeys(r.forecaster for r in rows))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, axes = plt.subplots(1, len(cutoffs), figsize=(3.3 * len(cutoffs), 3.2), squeeze=False)
    for b, frac in enumerate(cutoffs):
        ax = axes[0, b]
        for k, lab in enumerate(labels):
            hit = [r for r in rows if r.cutoff == frac and r.forecaster == lab]
            if hit:
                r = hit[0]
                ax.errorbar(max(r.seconds_per_curve, 1e-6), r.ll, yerr=0 if math.isnan(r.ll_se) else r.ll_se,
                            fmt="o", color=colors[k % len(colors)], label=lab)  # fmt: skip
        if paper and dataset.kind == "prior" and frac in CUTOFFS:
            j = CUTOFFS.index(frac)
            for p in PAPER_TABLE3:
                ax.plot(p.seconds_per_curve, p.ll[j], "s", mfc="none", color="0.4")
                ax.annotate(f"paper {p.label}", (p.seconds_per_curve, p.ll[j]), fontsize=6, xytext=(3, 2),
                            textcoords="offset points")  # fmt: skip
        ax.set_xscale("log")
        ax.set_title(f"cutoff {frac:.0%}", fontsize=9)
        ax.set_xlabel("seconds per curve", fontsize=8)
        if b == 0:
            ax.set_ylabel("log-likelihood", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0, -1].legend(fontsize=6)
    fig.suptitle(f"{dataset.name}: LL vs runtime (paper rows: one Xeon Gold 6242 core)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_report(
    results: Sequence[CurveResult],
    datasets: Sequence[EvalDataset],
    out_dir: str | Path,
    *,
    machine: str | None = None,
    paper: bool = True,
    plots: bool = True,
    command: str | None = None,
) -> tuple[str, list[Path]]:
    """Write ``results.md``, ``results.csv``, ``per_curve.csv`` and PNG plots into ``out_dir``.

    Returns the Markdown text and the written paths. Plots are skipped (with a logged warning)
    when matplotlib is not installed.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(results)
    # curves per (forecaster, dataset): when a cap (@N) made them differ, add the paired table
    seen: dict[tuple[str, str], int] = {}
    for r in results:
        seen[(r.forecaster, r.dataset)] = max(seen.get((r.forecaster, r.dataset), 0), r.index + 1)
    smallest = min(seen.values()) if seen else None
    paired = summarize(results, first_n=smallest) if seen and smallest < max(seen.values()) else None
    md = format_markdown(summary, datasets=datasets, paper=paper, machine=machine, paired=paired, paired_n=smallest)
    names = list(dict.fromkeys(r.forecaster for r in results))
    h2h = [h for other in names[1:] for h in head_to_head(results, names[0], other)]
    if h2h:
        md += (f"\n### Head to head: {names[0]} against each other forecaster, on the same curves and cutoffs\n\n"
               "Paired over the (curve, cutoff) problems both scored; speed-up = seconds per curve of B / of A.\n\n"
               + format_head_to_head(h2h))
    if command:
        md = f"Command: `{command}`\n\n" + md
    written = []
    (out / "results.md").write_text(md, encoding="utf-8")
    written.append(out / "results.md")
    write_csv(summary, out / "results.csv")
    written.append(out / "results.csv")
    _write_per_curve(results, out / "per_curve.csv")
    written.append(out / "per_curve.csv")
    if plots:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            log.warning("matplotlib is not installed: no plots (pip install 'lcpfn[plot]')")
        else:
            for ds in datasets:
                p = out / f"fan_{_slug(ds.name)}.png"
                if plot_fan_charts(results, ds, p):
                    written.append(p)
                p = out / f"ll_vs_runtime_{_slug(ds.name)}.png"
                if plot_ll_vs_runtime(summary, ds, p, paper=paper):
                    written.append(p)
    return md, written


def _write_per_curve(results: Sequence[CurveResult], path: Path) -> None:
    names = [k for k in CurveResult.__dataclass_fields__ if k != "bands"]
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(names)
        for r in results:
            w.writerow([getattr(r, k) for k in names])


# ================================================================================================
# command line
# ================================================================================================
def _check_positive_int(v: Any, name: str) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise InputError(f"{name} must be a positive integer, but got {v!r}")


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    """Register ``lcpfn evaluate``."""
    p = subparsers.add_parser(
        "evaluate",
        help="score forecasters on prior or real curves (the paper's benchmark)",
        description=(
            "Score forecasters with the paper's protocol: observe the first 10/20/40/80 % of each curve, "
            "forecast the rest, report mean log-likelihood of the true values, MSE of the median, 90 % "
            "coverage and seconds per curve. Forecasters: pfn:NAME_OR_DIR, mcmc[:key=value,...], last, pow3; "
            "prefix LABEL= to name one, suffix @N to use only the first N curves of each dataset (e.g. mcmc@5). "
            "Results are cached in OUT/cache.jsonl: rerun the same command to resume."
        ),
    )
    p.add_argument("--forecasters", "-f", nargs="+", default=["pfn:default"], metavar="SPEC",
                   help="forecasters to compare (default: pfn:default)")
    p.add_argument("--dataset", "-d", nargs="+", choices=["prior", "real"], default=["prior"],
                   help="prior: reference-prior curves; real: curves from --data-dir (default: prior)")
    p.add_argument("--curves", default=None, metavar="FILE.npz",
                   help="take the prior curves from this file (e.g. drawn by the reference package's sampler)")
    p.add_argument("--n-curves", type=int, default=None,
                   help="curves per dataset (default: 1000 sampled prior curves; all curves of a file or source)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampled prior curves (default: 0)")
    p.add_argument("--prior", default="reference",
                   help="prior the sampled curves come from: reference (the paper's Table 3) or extended (default: reference)")
    p.add_argument("--data-dir", default=None, help="real-curve directory (default: ../shared/data if it exists)")
    p.add_argument("--sources", nargs="+", default=None,
                   help=f"real sources (default: {' '.join(DEFAULT_SOURCES)}; 'all' for every one)")
    p.add_argument("--split", choices=["dev", "holdout", "all"], default="dev",
                   help="real-curve split by config hash; tune only on dev (default: dev)")
    p.add_argument("--inputs", choices=["normalised", "raw"], default="normalised",
                   help="normalised: forecasters see prefixes in the normalised space (the paper's protocol); "
                        "raw: in their own units with direction and known bounds (a loss: 0 and none), as a user "
                        "calls predict; scores are in normalised units either way (default: normalised)")
    p.add_argument("--cutoffs", type=float, nargs="+", default=list(CUTOFFS), help="fractions observed")
    p.add_argument("--out", default="evaluation", help="output directory (tables, plots, cache)")
    p.add_argument("--fresh", action="store_true", help="ignore and replace the cache in --out")
    p.add_argument("--chunk-size", type=int, default=None, help="curves per predict call (default per kind)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: the paper's one core)")
    p.add_argument("--plot-curves", type=int, default=4, help="curves per dataset drawn in fan charts")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--no-paper", action="store_true", help="leave the paper's rows out of the table")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_cli)


def run_cli(args: argparse.Namespace) -> int:
    """The ``evaluate`` subcommand: build datasets and forecasters, evaluate, write and print."""
    import sys

    import torch

    if args.threads < 1:
        raise InputError(f"--threads must be at least 1 but got {args.threads}")
    if args.n_curves is not None and args.n_curves < 1:
        raise InputError(f"--n-curves must be at least 1 but got {args.n_curves}")
    if args.plot_curves < 0:
        raise InputError(f"--plot-curves must be at least 0 but got {args.plot_curves}")
    cutoffs = _check_cutoffs(args.cutoffs)
    torch.set_num_threads(args.threads)
    datasets: list[EvalDataset] = []
    if "prior" in args.dataset:
        if args.curves:
            datasets.append(npz_dataset(args.curves, n_curves=args.n_curves))
        else:
            datasets.append(prior_dataset(args.n_curves or 1000, seed=args.seed, prior=args.prior))
    elif args.curves:
        raise InputError("--curves gives prior curves: use it with --dataset prior")
    if "real" in args.dataset:
        data_dir = args.data_dir or default_data_dir()
        if data_dir is None:
            raise InputError("no real-curve directory: pass --data-dir DIR (../shared/data does not exist here)")
        datasets += real_datasets(data_dir, sources=args.sources, split=args.split, n_curves=args.n_curves)
    forecasters = [build_forecaster(s, chunk_size=args.chunk_size) for s in args.forecasters]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cache = out / "cache.jsonl"
    if args.fresh and cache.exists():
        cache.unlink()
    results = evaluate(
        forecasters, datasets, cutoffs=cutoffs, cache=cache, plot_curves=args.plot_curves, inputs=args.inputs,
        progress=not args.no_progress and sys.stderr.isatty(),
    )  # fmt: skip
    machine = describe_machine(args.threads)
    command = _command_line(args)
    md, written = write_report(
        results, datasets, out, machine=machine, paper=not args.no_paper, plots=not args.no_plots, command=command
    )
    print(md)
    print("written: " + ", ".join(str(p) for p in written + [cache]))
    return 0


def _command_line(args: argparse.Namespace) -> str:
    """The options that decide the numbers, as an ``lcpfn evaluate`` command (for the report)."""
    parts = ["lcpfn evaluate", "--forecasters", *args.forecasters, "--dataset", *args.dataset]
    if args.curves:
        parts += ["--curves", str(args.curves)]
    if args.n_curves is not None:
        parts += ["--n-curves", str(args.n_curves)]
    if "prior" in args.dataset and not args.curves:
        parts += ["--seed", str(args.seed)]
        if args.prior != "reference":
            parts += ["--prior", args.prior]
    if "real" in args.dataset:
        if args.data_dir:
            parts += ["--data-dir", str(args.data_dir)]
        if args.sources:
            parts += ["--sources", *args.sources]
        parts += ["--split", args.split]
    if args.inputs != "normalised":
        parts += ["--inputs", args.inputs]
    if list(args.cutoffs) != list(CUTOFFS):
        parts += ["--cutoffs", *(f"{c:g}" for c in args.cutoffs)]
    parts += ["--threads", str(args.threads)]
    if args.chunk_size is not None:
        parts += ["--chunk-size", str(args.chunk_size)]
    return " ".join(parts)
