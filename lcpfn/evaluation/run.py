"""The evaluation loop: every forecaster on every curve at every cutoff, cached and resumable.

Protocol (Adriaensen et al. 2023, §4.1): for every curve of length ``L`` and every cutoff fraction
``f``, the forecaster observes the values ``y_1 .. y_c`` with ``c = round(f L)`` (at least 1, at
most ``L - 1``) and forecasts epochs ``c+1 .. L`` (``max_epochs = L``). Its scores
(:mod:`lcpfn.metrics`) are the mean log density of the true values, the MSE of the predictive
median and the coverage of the central 90 % interval, in the normalised units of
:mod:`lcpfn.evaluation.datasets`; its cost is the wall-clock seconds of ``predict`` per curve,
after one untimed warm-up forecast per forecaster and run (so that lazy setup, such as PyMC's
compilation, is not charged to the first curves).

Results are cached per (forecaster, curve, cutoff) in a JSONL file, appended after every chunk, so
an interrupted sweep resumes where it stopped.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from time import perf_counter, process_time
from typing import Any, Literal

import numpy as np

from lcpfn.errors import InputError, LCPFNError
from lcpfn.evaluation.datasets import EvalDataset
from lcpfn.evaluation.forecasters import Forecaster
from lcpfn.evaluation.protocol import CUTOFFS, _check_cutoffs, cutoff_index
from lcpfn.metrics import score

__all__ = ["CurveResult", "ResultCache", "evaluate"]

log = logging.getLogger(__name__)

LEVEL = 0.9
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)  # stored for the curves drawn in fan charts


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
    first ``plot_curves`` curves of each dataset are kept for fan charts. A warning that
    ``lcpfn`` logs again and again during the run (one per ``predict`` call) is shown once, with
    a count at the end (:func:`_each_warning_once`).
    """
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
    with _each_warning_once():
        for fc in forecasters:
            if inputs == "raw":  # other numbers: another cache key (normalised keys stay as they were)
                fc = replace(fc, key=f"{fc.key}|raw")
            work = _pending(fc, datasets, cutoffs, store, plot_curves)
            _compute(fc, work, store, plot_curves=plot_curves, progress=progress, inputs=inputs)
            results += _collect(fc, work, store, plot_curves)
    return results


_Work = tuple[EvalDataset, list[str], float, list[int]]  # (dataset, curve keys, cutoff, indices to compute)


def _pending(
    fc: Forecaster, datasets: Sequence[EvalDataset], cutoffs: Sequence[float], store: ResultCache, plot_curves: int
) -> list[_Work]:
    """Per (dataset, cutoff): the curves ``fc`` has no cached row for (or no bands, if plotted)."""
    work = []
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
    return work


def _compute(
    fc: Forecaster, work: list[_Work], store: ResultCache, *, plot_curves: int, progress: bool,
    inputs: Literal["normalised", "raw"],
) -> None:  # fmt: skip
    """Forecast the pending curves in chunks of one length, appending each chunk's rows to ``store``."""
    from tqdm import tqdm

    total = sum(len(w[3]) for w in work)
    if total:
        _warm_up(fc)
    with tqdm(total=total, desc=fc.label, unit="curve", disable=not progress or total == 0, leave=False) as bar:
        for sub, keys, frac, todo in work:
            # a curve's length is its horizon (max_epochs), one per predict call
            by_horizon: dict[int, list[int]] = {}
            for i in todo:
                by_horizon.setdefault(len(sub.curves[i]), []).append(i)
            for _, idx in sorted(by_horizon.items()):
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


def _collect(fc: Forecaster, work: list[_Work], store: ResultCache, plot_curves: int) -> list[CurveResult]:
    """Every (curve, cutoff) of ``work`` as a :class:`CurveResult`, from the cache rows."""
    results = []
    for sub, keys, frac, _ in work:
        for i in range(len(sub)):
            length = len(sub.curves[i])
            c = cutoff_index(length, frac)
            row = store.get(_key(fc.key, keys[i], c, length))
            assert row is not None  # computed by _compute
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


class _OncePerRun(logging.Filter):
    """Passes the first of each distinct warning (logger, level, message) and counts the repeats."""

    def __init__(self) -> None:
        super().__init__()
        self.repeats: dict[tuple[str, int, str], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, record.levelno, record.getMessage())
        if key in self.repeats:
            self.repeats[key] += 1
            return False
        self.repeats[key] = 0
        return True


@contextmanager
def _each_warning_once() -> Iterator[None]:
    """Within the block, each distinct warning of an ``lcpfn`` logger is logged once; at the end,
    one line per repeated warning says how often it came.

    Input checks warn per ``predict`` call (e.g. prefixes outside ``[0, 1]``): without this, an
    evaluation would print the same warning once per chunk and cutoff. A logger's filters see
    only its own records, so the filter goes on every ``lcpfn`` logger that exists (all are
    created at import, before any forecast).
    """
    once = _OncePerRun()
    loggers = [
        lg for name, lg in list(logging.Logger.manager.loggerDict.items())
        if isinstance(lg, logging.Logger) and (name == "lcpfn" or name.startswith("lcpfn."))
    ]  # fmt: skip
    for lg in loggers:
        lg.addFilter(once)
    try:
        yield
    finally:
        for lg in loggers:
            lg.removeFilter(once)
        for (name, level, message), n in once.repeats.items():
            if n:
                short = message if len(message) <= 80 else message[:77] + "..."
                log.log(level, "%s repeated that warning %d more time(s) in this evaluation: %s", name, n, short)


def _num(v: Any) -> float:
    return math.nan if v is None else float(v)


def _screen(ds: EvalDataset, idx: list[int], frac: float) -> tuple[list[int], list[int]]:
    """Split ``idx`` into curves the shared input validation accepts and those it would reject
    (:func:`lcpfn.normalization.unit_transform`: a prefix far outside ``[0, 1]``), so a rejected curve
    is forecast alone and does not break up the batch whose time is measured."""
    from lcpfn.normalization import unit_transform

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
    started, cpu_started = perf_counter(), process_time()
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
    seconds = (perf_counter() - started) / len(idx)
    cpu_seconds = (process_time() - cpu_started) / len(idx)
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
