"""The forecasting API: ``LCPFN.from_pretrained(...).predict(curves, max_epochs=...)``."""

from __future__ import annotations

import importlib.resources
import itertools
import logging
import math
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from lcpfn.bar_distribution import BarDistribution
from lcpfn.bar_forecast import DECODE_BINS, BarForecast
from lcpfn.checkpoint import load_model
from lcpfn.errors import InputError, UnknownModelError
from lcpfn.forecast import Forecast, Predictor
from lcpfn.model import PFN
from lcpfn.normalization import Bounds, BoundsArg, Direction, check_bounds, check_direction, default_bounds
from lcpfn.validation import CurveBatch, check_max_epochs

__all__ = ["LCPFN", "BarForecast", "shipped_models", "head_input", "TOKENS_PER_PASS"]

Reading = Literal["prefix", "stretch"]

TOKENS_PER_PASS = 1 << 15
"""Most tokens (observed plus forecast epochs, over the pass's curves) in one forward pass: bounds
its activations (about 8 KB a token for the shipped models: 260 MB) whatever the horizon. Measured
with two threads on a shared machine, passes of 2^15 tokens ran 1.3 times as fast as passes of
2^13 (75 MB), and 2^16 (415 MB) hardly faster."""

log = logging.getLogger(__name__)


def shipped_models() -> list[str]:
    """Names accepted by :meth:`LCPFN.from_pretrained` besides directories."""
    root = importlib.resources.files("lcpfn.models")
    return sorted(p.name for p in root.iterdir() if p.is_dir() and (p / "config.json").is_file())


def _resolve(name_or_path: str | Path) -> tuple[str, Path]:
    name = str(name_or_path)
    root = importlib.resources.files("lcpfn.models")  # a shipped model is models/<name>/
    if "/" not in name and "\\" not in name and (root / name / "config.json").is_file():
        with importlib.resources.as_file(root / name) as path:
            return name, Path(path)
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path.name, path
    raise UnknownModelError(
        f"{name!r} is neither a shipped model ({', '.join(shipped_models()) or 'none installed'}) "
        "nor an existing checkpoint directory"
    )


class LCPFN(Predictor):
    """A trained LC-PFN: forecasts the rest of learning curves from their first epochs.

    Build one with :meth:`from_pretrained`. ``predict`` runs many curves in one vectorised
    forward pass and returns a :class:`~lcpfn.forecast.Forecast`.
    """

    def __init__(self, model: PFN, bar: BarDistribution, config: dict[str, Any], *, name: str = "model",
                 device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.bar = bar.to(self.device)
        self._bar_cpu = BarDistribution(bar.borders.detach().cpu())
        self.config = config
        self.name = name
        self.normalization = config.get("normalization", "unit")
        # the run length (epochs) the model was trained on: its training budget if it had one
        # (``lcpfn train --budget``), else its ``seq_len``
        budget = config.get("budget")
        self.native_length = int(budget) if budget is not None else int(model.config.seq_len)

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path = "default", *, device: str | torch.device = "cpu") -> LCPFN:
        """Load a shipped model by name (``"default"``, ``"reference"``) or a checkpoint directory.

        Offline: shipped weights are package data. Raises :class:`~lcpfn.errors.UnknownModelError`
        for an unknown name and :class:`~lcpfn.errors.CheckpointError` for a broken directory.
        """
        name, path = _resolve(name_or_path)
        try:
            dev = torch.device(device)
        except RuntimeError:
            raise InputError(f"device must be like 'cpu' or 'cuda', but got {device!r}") from None
        model, bar, config = load_model(path, device=dev)
        return cls(model, bar, config, name=name, device=dev)

    def __repr__(self) -> str:
        c = self.model.config
        return (
            f"LCPFN(name={self.name!r}, native_length={self.native_length}, layers={c.n_layers}, "
            f"d_model={c.d_model})"
        )

    def predict(
        self,
        curves,
        *,
        max_epochs: int,
        direction: Direction = "maximize",
        bounds: BoundsArg = "auto",
        batch_size: int = 512,
        reading: Reading = "prefix",
        keep_within: Bounds | str = "bounds",
    ) -> Forecast:
        """Forecast epochs ``T+1 .. max_epochs`` of curves observed for epochs ``1 .. T``.

        The forecast keeps within ``keep_within``: by default the known sides of ``bounds``
        (truncated and renormalised there, ``docs/normalization.md``); ``(low, high)``, with
        ``None`` for no limit on a side, when ``bounds`` is only a scale and not the metric's
        range (the Optuna pruner's study-derived range).

        Args:
            curves: one curve ``(T,)``; curves of one length ``(n, T)``; or curves of different
                lengths: a list of 1-D arrays, a 2-D array padded with NaN after each curve's
                end, or a pandas DataFrame with one run per column. Each curve needs at least
                one value, all finite, and fewer than ``max_epochs``. Curves of different
                lengths come back as one forecast over epochs ``min(T)+1 .. max_epochs``, NaN
                where a curve has already observed the epoch (``forecast.lengths``).
            max_epochs: the last epoch to forecast (the run's total length).
            direction: ``"minimize"`` for losses/errors; the model sees the values flipped,
                quantiles and densities come back in the caller's units.
            bounds: how values map into the model's space (higher is better, mostly ``[0, 1]``);
                the one used is reported as ``forecast.bounds``:

                * ``"auto"`` (default): ``(0, 1)`` if every value lies in ``[0, 1]``; else
                  ``(0, None)`` for a minimised metric that is never negative (a loss); else
                  ``"infer"``.
                * ``(low, high)``: the metric's known range, mapped onto ``[0, 1]`` (flipped for
                  ``"minimize"``).
                * ``(low, None)`` or ``(None, high)``: one side known, e.g. ``(0, None)`` for a
                  loss. The known *good* bound (``high`` when maximising, ``low`` when
                  minimising) maps to 1 and the prefix's worst value to 0.2 (for a loss:
                  ``z = 1 - y / (1.25 max(prefix))``); a known *bad* bound maps to 0 and the
                  prefix's best value to 0.8. Observed values beyond a known bound raise.
                * ``"infer"`` or ``(None, None)``: nothing known; the prefix's worst value maps to
                  0.3 and its best to 0.5, leaving room for 2.5 more prefix spans of improvement.
                * ``None``: values are used as they are (``1 - y`` for ``"minimize"``) and must
                  lie in about ``[0, 1]``.

                The partial and inferred maps are affine per curve and computed from that curve's
                observed values only; constant or one-point prefixes get a span of at least
                ``0.1 max|y|`` (1 for all zeros). Exact formulas:
                :func:`lcpfn.normalization.infer_transform`; measurements:
                ``docs/normalization.md``. Quantiles and densities always come back in the
                caller's units (densities include the map's Jacobian ``|scale|``).
            batch_size: most curves per forward pass (memory and speed, not results); a pass
                also holds at most :data:`TOKENS_PER_PASS` tokens (observed plus forecast epochs
                of its curves), splitting long horizons.
            reading: how a run shorter than the model's native length ``L`` is read.
                ``"prefix"`` (default): epoch ``t`` is model epoch ``t``, the run is the start
                of an ``L``-epoch curve. ``"stretch"``: epoch ``t`` is model epoch
                ``t * L / max_epochs``, so the run's last epoch is the prior's last, where its
                budget-tied components (a late rise) end. Runs of ``L`` epochs or more are read
                the same either way.

        Horizons longer than the model's native length ``L`` are handled by subsampling: epoch
        ``t`` is shown to the model as ``t * L / max_epochs`` and about ``L * T / max_epochs``
        evenly spaced observed epochs are used as context (never more than ``L - 1``), so the
        run is read as an ``L``-epoch curve at a coarser resolution. Every epoch up to
        ``max_epochs`` is forecast; nothing is truncated.

        Memory: the forecast holds ``4 * d_model`` bytes per curve and forecast epoch (512 B for
        the shipped models: 41 KB for a curve forecast 80 epochs ahead, 410 MB for 10,000 such
        curves; 51 MB for one curve forecast 100,000 epochs ahead), the input of the output head,
        which its methods run again chunk by chunk: each method needs at most one chunk of
        :data:`~lcpfn.bar_forecast.DECODE_BINS` bins (about 150 MB with its temporaries) besides
        its ``(n, H)`` float64 result, and the forecast keeps the last chunk (at most 84 MB). The
        forward pass needs about 260 MB (:data:`TOKENS_PER_PASS`). Each method over every epoch
        costs about one forward pass; see :mod:`lcpfn.bar_forecast`. For more curves than fit,
        stream them with :meth:`predict_iter`.
        """
        self._check_run_options(batch_size, reading)
        return self._predict(
            curves, max_epochs=max_epochs, direction=direction, bounds=bounds, keep_within=keep_within,
            forecast=lambda batch: self._run(batch, batch_size=batch_size, reading=reading),
        )

    def predict_iter(
        self,
        curves,
        *,
        max_epochs: int,
        direction: Direction = "maximize",
        bounds: BoundsArg = "auto",
        chunk_size: int | None = None,
        batch_size: int = 512,
        reading: Reading = "prefix",
        progress: bool = False,
    ) -> Iterator[Forecast]:
        """Forecast any number of curves as a stream: one forecast per ``chunk_size`` curves, in order.

        The same forecasts as :meth:`predict` (every option means the same), made and handed
        over ``chunk_size`` curves at a time, so memory depends on ``chunk_size`` and not on the
        number of curves: a chunk's forecast holds ``4 * d_model`` bytes per curve and forecast
        epoch (41 MB for 1,000 curves forecast 80 epochs ahead with the shipped models; see
        :meth:`predict`) plus at most one decoded chunk (:mod:`lcpfn.bar_forecast`, 84 MB),
        freed once the caller lets it go. Forecast ``k`` covers the ``forecast.n_curves`` curves
        after those of the forecasts before it (``chunk_size`` each; the last may be shorter)::

            for fc in model.predict_iter(curves, max_epochs=100, progress=True):
                medians.append(fc.quantile(0.5)[:, -1])

        Args:
            curves: what :meth:`predict` takes, read ``chunk_size`` curves at a time: a 2-D
                array ``(n, T)`` (or any array-like with a 2-D ``shape`` and row slicing:
                ``np.load(path, mmap_mode="r")``, an h5py or zarr dataset,
                :func:`lcpfn.streaming.open_npy`), a DataFrame of runs as columns, a list of
                1-D curves, or any iterable of 1-D curves (a generator reading a file). A 1-D
                array is one curve (one forecast).
            chunk_size: curves per forecast. Default: as many as one decoded chunk holds
                (:data:`lcpfn.bar_forecast.DECODE_BINS` bins: 42 curves for the shipped models'
                1000 bins at ``max_epochs=100``), so all the methods called on a chunk's forecast
                share one run of the output head, which otherwise costs about as much as the
                forward pass per method; larger chunks save Python overhead, not time.
            progress: show a progress bar (tqdm, on stderr) counting curves.
            max_epochs, direction, bounds, batch_size, reading: as in :meth:`predict`. With
                ``bounds="auto"`` one rule holds for every chunk: for arrays, DataFrames and lists
                it is chosen from all the values (one pass over them before the first forecast);
                for an iterator, from the first chunk, and a later chunk that breaks it (a value
                beyond ``(0, 1)``, say) raises — pass ``bounds`` to decide it yourself.

        Options are checked when this is called; the curves of a chunk when it is reached, and a
        bad curve raises :class:`~lcpfn.errors.InputError` naming its chunk's curves
        (``curves 2000..2999: ...``).
        """
        self._check_run_options(batch_size, reading)
        check_max_epochs(max_epochs)
        check_direction(direction)
        if chunk_size is None:  # one decoded chunk per forecast, for the longest horizon max_epochs allows
            chunk_size = max(1, DECODE_BINS // (self._bar_cpu.num_bins * (int(max_epochs) - 1)))
        elif isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
            raise InputError(f"chunk_size must be a positive integer, but got {chunk_size!r}")
        if not (isinstance(bounds, str) and bounds == "auto"):
            check_bounds(bounds)
        chunks, total, values = _chunked(curves, int(chunk_size))
        if total == 0:
            raise InputError("curves must contain at least one curve, but is empty")
        if isinstance(bounds, str) and bounds == "auto" and values is not None:
            bounds = _auto_bounds(values, direction)
        return self._stream(
            chunks, total, max_epochs=max_epochs, direction=direction, bounds=bounds,
            batch_size=batch_size, reading=reading, progress=progress,
        )

    def _stream(self, chunks: Iterator[Any], total: int | None, *, bounds: BoundsArg, progress: bool,
                **options: Any) -> Iterator[Forecast]:
        from tqdm.auto import tqdm

        start = 0
        with tqdm(total=total, unit="curve", desc="predict", disable=not progress, dynamic_ncols=True) as bar:
            for part in chunks:
                try:
                    fc = self.predict(part, bounds=bounds, **options)
                except InputError as exc:  # name the curves by their place in the whole input
                    n = int(part.shape[1]) if hasattr(part, "columns") else len(part)
                    raise InputError(f"curves {start}..{start + n - 1}: {_renumber(str(exc), start)}") from None
                if isinstance(bounds, str) and bounds == "auto":
                    bounds = fc.bounds  # an iterator's first chunk decides the rule for the rest
                start += fc.n_curves
                bar.update(fc.n_curves)
                yield fc
        if start == 0:
            raise InputError("curves must contain at least one curve, but the iterable yielded none")

    def _check_run_options(self, batch_size, reading) -> None:
        if self.normalization != "unit":
            raise InputError(
                f"this lcpfn does not know the model's normalization {self.normalization!r}; upgrade lcpfn"
            )
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"batch_size must be a positive integer, but got {batch_size!r}")
        if reading not in ("prefix", "stretch"):
            raise InputError(f"reading must be 'prefix' or 'stretch', but got {reading!r}")

    def _forecast(self, batch: CurveBatch) -> Forecast:
        return self._run(batch, batch_size=512, reading="prefix")

    @torch.no_grad()
    def _run(self, batch: CurveBatch, *, batch_size: int, reading: Reading) -> BarForecast:
        z = batch.z
        n, t_obs = z.shape
        max_epochs = batch.max_epochs
        L = self.native_length
        if reading == "stretch" and max_epochs < L:
            scale = L / max_epochs  # the run's last epoch is the model's last
            ctx_idx = np.arange(t_obs)
        else:
            scale = min(1.0, L / max_epochs)  # model epochs per real epoch
            ctx_idx = _context_indices(t_obs, scale, L)
        ctx_t = torch.as_tensor((ctx_idx + 1) * scale, dtype=torch.float32, device=self.device)
        qry_t = torch.arange(t_obs + 1, max_epochs + 1, dtype=torch.float32, device=self.device) * scale
        ctx_y = torch.as_tensor(z[:, ctx_idx], dtype=torch.float32)
        n_ctx, n_qry = len(ctx_idx), len(qry_t)
        # passes of at most TOKENS_PER_PASS tokens: a long horizon is split (query epochs attend
        # only to the observed ones, so each is computed the same whichever others share its pass)
        q_step = max(1, min(n_qry, TOKENS_PER_PASS - n_ctx))
        c_step = max(1, min(batch_size, TOKENS_PER_PASS // (n_ctx + q_step)))
        features = torch.empty((n, n_qry, self.model.config.d_model), dtype=torch.float32)  # (n, H, D)
        for c0 in range(0, n, c_step):
            yb = ctx_y[c0 : c0 + c_step].to(self.device)
            b = yb.shape[0]
            for q0 in range(0, n_qry, q_step):
                qb = qry_t[q0 : q0 + q_step]
                out = head_input(self.model, ctx_t.expand(b, -1), yb, qb.expand(b, -1))
                features[c0 : c0 + b, q0 : q0 + len(qb)] = out.float().cpu()
        return BarForecast(
            features=features,
            head=self.model.head,
            bar=self._bar_cpu,
            device=self.device,
            epochs=np.arange(t_obs + 1, max_epochs + 1),
            observed=batch.y,
            transform=batch.transform,
            direction=batch.direction,
            squeeze=batch.squeeze,
            bounds=batch.bounds,
        )


def head_input(
    model: PFN, ctx_epochs: torch.Tensor, ctx_values: torch.Tensor, qry_epochs: torch.Tensor
) -> torch.Tensor:
    """What ``model.head`` reads for each query: ``(B, Q, d_model)``, so that
    ``model.head(head_input(model, ...))`` is ``model(...)``, the logits ``(B, Q, K)``
    (:meth:`lcpfn.model.PFN.features`)."""
    return model.features(ctx_epochs, ctx_values, qry_epochs)


def _chunked(curves, size: int) -> tuple[Iterator[Any], int | None, Callable[[], Iterator[np.ndarray]] | None]:
    """``curves`` (any layout :meth:`LCPFN.predict_iter` takes) -> its chunks of ``size`` curves,
    the number of curves (``None`` for an iterator) and, where the curves can be read twice, a
    function returning their values chunk by chunk (for ``bounds="auto"``)."""
    if hasattr(curves, "columns") and hasattr(curves, "iloc"):  # a DataFrame: runs as columns
        n = int(curves.shape[1])
        parts = range(0, n, size)
        return ((curves.iloc[:, s : s + size] for s in parts), n,
                lambda: (curves.iloc[:, s : s + size].to_numpy(dtype=np.float64) for s in parts))
    shape = getattr(curves, "shape", None)
    if isinstance(shape, tuple) and hasattr(curves, "__getitem__") and not isinstance(curves, (list, tuple)):
        if len(shape) != 2:  # one curve (1-D), or a shape predict names in its error
            return iter([curves]), 1 if len(shape) == 1 else None, None
        n = int(shape[0])
        parts = range(0, n, size)
        return ((curves[s : s + size] for s in parts), n,
                lambda: (np.asarray(curves[s : s + size], dtype=np.float64) for s in parts))
    if isinstance(curves, (list, tuple)):
        n = len(curves)
        parts = range(0, n, size)
        return ((list(curves[s : s + size]) for s in parts), n, lambda: (_values(curves[s : s + size]) for s in parts))
    try:
        it = iter(curves)
    except TypeError:
        raise InputError(
            f"curves must be an array, a DataFrame or an iterable of 1-D curves, but got {type(curves).__name__}"
        ) from None
    return _curve_chunks(it, size), None, None


def _curve_chunks(it: Iterator[Any], size: int) -> Iterator[list[Any]]:
    """Lists of ``size`` curves from an iterator of 1-D curves (a scalar is refused: an iterator
    of values would otherwise be read as curves of ``size`` values)."""
    start = 0
    for chunk in iter(lambda: list(itertools.islice(it, size)), []):
        for i, c in enumerate(chunk):
            if np.ndim(c) != 1:
                raise InputError(
                    f"curves (an iterable) must yield 1-D curves, but item {start + i} has {np.ndim(c)} dimensions"
                )
        start += len(chunk)
        yield chunk


def _renumber(message: str, start: int) -> str:
    """A chunk's error message with its ``curve i`` renumbered to ``curve start + i``."""
    return re.sub(r"\bcurve (\d+)\b", lambda m: f"curve {start + int(m[1])}", message)


def _values(curves) -> np.ndarray:
    """The values of a few curves, flattened (a non-numeric one is left to predict to name)."""
    try:
        return np.concatenate([np.ravel(np.asarray(c, dtype=np.float64)) for c in curves])
    except (TypeError, ValueError):
        return np.empty(0)


def _auto_bounds(values: Callable[[], Iterator[np.ndarray]], direction: Direction) -> BoundsArg:
    """``bounds="auto"`` decided once from all the values (read chunk by chunk), or ``"auto"``
    where there is nothing to decide from (predict then names the problem)."""
    lo, hi = math.inf, -math.inf
    for chunk in values():
        v = chunk[~np.isnan(chunk)]
        if v.size:
            lo, hi = min(lo, float(v.min())), max(hi, float(v.max()))
    if lo > hi or not (math.isfinite(lo) and math.isfinite(hi)):
        return "auto"
    return default_bounds(np.array([[lo, hi]]), direction=direction)


def _context_indices(t_obs: int, scale: float, native_length: int) -> np.ndarray:
    """Indices (0-based) of the observed epochs used as context.

    At native resolution (``scale == 1``) all of them. Otherwise the observed epoch nearest to
    each model epoch ``1, 2, ...`` that the prefix covers, so context points keep the unit
    spacing the model was trained on.
    """
    if scale >= 1.0:
        return np.arange(t_obs)
    n_ctx = max(1, min(native_length - 1, int(np.floor(t_obs * scale))))
    idx = np.rint(np.arange(1, n_ctx + 1) / scale).astype(np.int64) - 1
    return np.unique(np.clip(idx, 0, t_obs - 1))
