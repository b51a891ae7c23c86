"""Forecast: the posterior predictive of every future epoch, in the caller's units.

A forecaster (the PFN, the MCMC baseline) works in its own *model space* ``z``; the caller's
values ``y`` map into it by a per-curve affine transform ``z = scale * y + shift`` (``scale < 0``
for minimised metrics). :class:`Forecast` does that bookkeeping once — flipping quantiles, adding
the Jacobian ``log|scale|`` to densities — so a subclass only implements the distribution in
model space. Arrays are float64 numpy, batch-first: ``(n, H)`` for ``n`` curves and ``H`` future
epochs; a forecast made from a 1-D curve returns ``(H,)`` arrays and plain floats.

A forecast keeps to the bounds the caller gave (the map's ``limits``: the known sides of
``bounds``, not ``bounds=None`` and not an inferred side). Each marginal is *truncated* to them
and renormalised, in model space, once for every forecaster: with ``F`` the marginal's CDF and
``[a, b]`` the limits in model space, the ``q``-quantile is ``F^-1(F(a) + q (F(b) - F(a)))``, the
CDF ``(F(z) - F(a)) / (F(b) - F(a))``, the log density ``log f(z) - log(F(b) - F(a))`` inside and
``-inf`` outside (still a proper density), the mean that of the truncated marginal. A marginal
with less than :data:`MIN_MASS` inside is clipped instead (its quantiles and mean pile up at the
nearer bound). Why truncation and not clipping: ``docs/normalization.md``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable

import numpy as np

from lcpfn.errors import InputError
from lcpfn.normalization import Bounds, BoundsArg, Direction, ValueTransform
from lcpfn.validation import CurveBatch, prepare_curves

MIN_MASS = 1e-9
"""A marginal with less probability than this inside the limits is clipped to them, not
renormalised: dividing by less would amplify float64 rounding in ``F`` beyond ``1e-7``."""

_TAIL = 1e-15  # the generic inverse CDF brackets between the untruncated quantiles at _TAIL and 1 - _TAIL
_BISECT_STEPS = 64  # a fixed count, so the generic inverse CDF is non-decreasing in its target
_MEAN_POINTS = 513  # grid of the generic truncated mean (trapezoid rule over the CDF)


class Forecast(ABC):
    """Posterior predictive marginals of epochs ``epochs[0] .. epochs[-1]`` for ``n`` curves.

    Attributes:
        epochs: ``(H,)`` int array, the forecast epochs ``T+1 .. max_epochs`` (``T`` the shortest
            curve's length).
        observed: ``(n, T_max)`` the observed values, in caller units, NaN after a curve's end.
        lengths: ``(n,)`` the number of observed epochs of each curve. Where curves differ in
            length, every ``(n, H)`` result is NaN at the epochs a curve has already observed.
        direction: ``"maximize"`` or ``"minimize"``.
        bounds: the ``(low, high)`` the values were normalised with; ``None`` for a side that
            was inferred from each curve's prefix (see :mod:`lcpfn.normalization`). Every result
            keeps to the known sides of ``transform.limits`` (these bounds, unless ``bounds=None``
            was passed): the marginals are truncated to them (module docstring).
    """

    def __init__(
        self,
        *,
        epochs: np.ndarray,
        observed: np.ndarray,
        transform: ValueTransform,
        direction: str,
        squeeze: bool,
        lengths: np.ndarray | None = None,
        bounds: Bounds | None = None,
    ) -> None:
        self.epochs = np.asarray(epochs, dtype=np.int64)
        self.observed = np.asarray(observed, dtype=np.float64)
        self.transform = transform
        self.direction = direction
        self.bounds = bounds
        n, t = self.observed.shape
        self.lengths = np.full(n, t, dtype=np.int64) if lengths is None else np.asarray(lengths, dtype=np.int64)
        self._squeeze = squeeze
        # (n, H) True where epoch <= the curve's own length: nothing to forecast there
        self._seen = self.epochs[None, :] <= self.lengths[:, None]
        self._limited = transform.has_limits
        self._z_lo, self._z_hi = transform.z_limits()  # (n,) each, the limits in model space
        self._mass: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    # --- what a subclass implements, in model space -------------------------------------------
    @abstractmethod
    def _z_quantile(self, p: float) -> np.ndarray:
        """``(n, H)`` model-space quantile at probability ``p`` in (0, 1)."""

    @abstractmethod
    def _z_cdf(self, z: np.ndarray, h: int | None) -> np.ndarray:
        """Model-space CDF. ``h=None``: ``z`` is ``(n, H)``, one value per epoch.
        ``h`` an index into ``epochs``: ``z`` is ``(n, G)``, ``G`` values at that epoch."""

    @abstractmethod
    def _z_log_prob(self, z: np.ndarray, h: int | None) -> np.ndarray:
        """Model-space log density, shapes as in :meth:`_z_cdf`."""

    @abstractmethod
    def _z_mean(self) -> np.ndarray:
        """``(n, H)`` model-space mean."""

    # --- what a subclass may override for exactness or speed (used with limits only) ----------
    def _z_quantile_array(self, p: np.ndarray) -> np.ndarray:
        """``(n, H)`` model-space quantiles at one probability per marginal, ``p`` ``(n, H)``.

        Default: bisection on :meth:`_z_cdf` in a fixed number of steps between the quantiles at
        ``1e-15`` and ``1 - 1e-15`` (a target beyond them gets that edge): accurate to about
        ``1e-15`` of that range and non-decreasing in ``p``. Override it where the inverse CDF
        takes an array of probabilities.
        """
        lo = np.asarray(self._z_quantile(_TAIL), dtype=np.float64)
        hi = np.maximum(np.asarray(self._z_quantile(1.0 - _TAIL), dtype=np.float64), lo)
        for _ in range(_BISECT_STEPS):
            mid = 0.5 * (lo + hi)
            below = self._z_cdf(mid, None) < p
            lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
        return 0.5 * (lo + hi)

    def _z_mean_between(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """``(n, H)`` model-space mean of each marginal conditioned on ``lo <= Z <= hi``.

        ``lo``, ``hi``: ``(n,)`` per curve, ``-inf`` / ``inf`` for a side without a limit. Default:
        ``E[Z] = L + integral_L^U (1 - G(z)) dz`` with ``G`` the conditioned CDF, by the trapezoid
        rule on 513 points from ``L = max(lo, Q(1e-15))`` to ``U = min(hi, Q(1 - 1e-15))``
        (``Q`` the untruncated quantile). Override it with an exact formula where there is one.
        """
        n, h = self.n_curves, len(self.epochs)
        fa, fb = self._cdf_at_limits(lo, hi)
        mass = fb - fa
        lo2, hi2 = (np.broadcast_to(v[:, None], (n, h)) for v in (lo, hi))
        start = np.maximum(lo2, np.asarray(self._z_quantile(_TAIL), dtype=np.float64))
        stop = np.maximum(np.minimum(hi2, np.asarray(self._z_quantile(1.0 - _TAIL), dtype=np.float64)), start)
        step = (stop - start) / (_MEAN_POINTS - 1)
        total = np.zeros((n, h))
        for k in range(_MEAN_POINTS):
            g = np.clip((self._z_cdf(start + k * step, None) - fa) / mass, 0.0, 1.0)
            total += (0.5 if k in (0, _MEAN_POINTS - 1) else 1.0) * (1.0 - g)
        return start + step * total

    # --- the truncation to the limits, in model space -----------------------------------------
    def _cdf_at_limits(self, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``F(lo)`` and ``F(hi)``, ``(n, H)`` each, for per-curve ``lo``, ``hi`` ``(n,)`` (0 and 1 on a
        side without a limit, and at the epochs a curve has observed)."""
        n, h = self.n_curves, len(self.epochs)
        out = []
        for z, empty in ((lo, 0.0), (hi, 1.0)):
            known = np.isfinite(z)
            f = np.full((n, h), empty)
            if known.any():
                at = np.broadcast_to(np.where(known, z, 0.0)[:, None], (n, h)).copy()
                f = np.where(known[:, None], self._z_cdf(at, None), empty)
            out.append(np.clip(np.where(self._seen, empty, f), 0.0, 1.0))
        return out[0], out[1]

    def _masses(self, h: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``F(a)``, ``F(b)`` and the mass inside ``F(b) - F(a)`` of every marginal, ``(n, H)``
        (``(n, 1)`` at epoch index ``h``), computed once."""
        if self._mass is None:
            fa, fb = self._cdf_at_limits(self._z_lo, self._z_hi)
            self._mass = (fa, fb, np.maximum(fb - fa, 0.0))
        if h is None:
            return self._mass
        fa, fb, mass = self._mass
        return fa[:, h : h + 1], fb[:, h : h + 1], mass[:, h : h + 1]

    def _zt_quantile(self, p: float) -> np.ndarray:
        """``(n, H)`` model-space ``p``-quantile of the truncated marginals."""
        if not self._limited:
            return self._z_quantile(p)
        fa, _, mass = self._masses()
        ok = mass >= MIN_MASS
        z = self._z_quantile_array(np.where(ok, fa + p * mass, p))  # too little mass inside: clip F^-1(p)
        return np.clip(z, self._z_lo[:, None], self._z_hi[:, None])

    def _zt_cdf(self, z: np.ndarray, h: int | None) -> np.ndarray:
        """The truncated model-space CDF, shapes as in :meth:`_z_cdf`."""
        f = self._z_cdf(z, h)
        if not self._limited:
            return f
        fa, _, mass = self._masses(h)
        ok = mass >= MIN_MASS
        return np.clip(np.where(ok, (f - fa) / np.where(ok, mass, 1.0), f), 0.0, 1.0)

    def _zt_log_prob(self, z: np.ndarray, h: int | None) -> np.ndarray:
        """The truncated model-space log density inside the limits (the caller masks outside)."""
        lp = self._z_log_prob(z, h)
        if not self._limited:
            return lp
        return lp - np.log(np.maximum(self._masses(h)[2], MIN_MASS))

    def _zt_mean(self) -> np.ndarray:
        """``(n, H)`` model-space mean of the truncated marginals."""
        if not self._limited:
            return self._z_mean()
        fa, fb, mass = self._masses()
        lo, hi = self._z_lo[:, None], self._z_hi[:, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            inside = self._z_mean_between(self._z_lo, self._z_hi)
            # too little mass inside: the mean of the clipped marginal, the limits weighted by the mass beyond
            clipped = np.where(np.isfinite(lo), lo * fa, 0.0) + np.where(np.isfinite(hi), hi * (1.0 - fb), 0.0)
        return np.clip(np.where(mass >= MIN_MASS, inside, clipped), lo, hi)

    def _clip_to_limits(self, y: np.ndarray) -> np.ndarray:
        """Caller-unit values clipped to the known bounds (removes the map's rounding)."""
        low, high = self.transform.limits
        return y if low is None and high is None else np.clip(y, low, high)

    def _beyond_limits(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Masks of caller-unit values below the known low bound and above the known high one."""
        low, high = self.transform.limits
        with np.errstate(invalid="ignore"):  # NaN (observed epochs) compares False
            below = y < low if low is not None else np.zeros(y.shape, dtype=bool)
            above = y > high if high is not None else np.zeros(y.shape, dtype=bool)
        return below, above

    # --- public API, in caller units --------------------------------------------------------------
    @property
    def n_curves(self) -> int:
        return self.observed.shape[0]

    @property
    def max_epochs(self) -> int:
        return int(self.epochs[-1])

    def quantile(self, q: float) -> np.ndarray:
        """The ``q``-quantile of every future epoch: ``(n, H)``, or ``(H,)`` for one curve."""
        q = _check_probability(q, "q")
        up = self.transform.to_caller(self._zt_quantile(q))
        if np.all(self.transform.scale > 0):
            out = up
        else:  # a decreasing map turns the q-quantile into the (1 - q)-quantile
            down = self.transform.to_caller(self._zt_quantile(1.0 - q))
            out = np.where(self.transform.scale[:, None] > 0, up, down)
        return self._out(self._hide_seen(self._clip_to_limits(out)))

    def median(self) -> np.ndarray:
        """The predictive median of every future epoch, shape as :meth:`quantile`."""
        return self.quantile(0.5)

    def interval(self, level: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
        """Central ``level`` credible interval ``(low, high)`` of every future epoch."""
        level = _check_probability(level, "level")
        return self.quantile((1 - level) / 2), self.quantile((1 + level) / 2)

    def mean(self) -> np.ndarray:
        """The predictive mean of every future epoch, shape as :meth:`quantile`."""
        return self._out(self._hide_seen(self._clip_to_limits(self.transform.to_caller(self._zt_mean()))))

    def log_prob(self, values) -> np.ndarray:
        """Log density of ``values`` (one per future epoch) in the caller's units.

        ``values`` has shape ``(n, H)`` (``(H,)`` for a forecast of one curve); the result too.
        """
        y = self._check_values(values, "values")
        z = self.transform.to_model(y)
        out = self._zt_log_prob(z, None) + self.transform.log_abs_scale[:, None]
        below, above = self._beyond_limits(y)
        return self._out(self._hide_seen(np.where(below | above, -np.inf, out)))

    def cdf(self, values) -> np.ndarray:
        """``P(Y_t <= values_t)`` for every future epoch, shapes as :meth:`log_prob`."""
        y = self._check_values(values, "values")
        p = self._zt_cdf(self.transform.to_model(y), None)
        p = np.where(self.transform.scale[:, None] > 0, p, 1.0 - p)
        return self._out(self._hide_seen(self._cdf_beyond_limits(y, p)))

    def log_prob_at(self, grid, *, epoch: int | None = None) -> np.ndarray:
        """Log density at one epoch (default: the last) over a grid of values.

        ``grid`` is 1-D ``(G,)``; returns ``(n, G)``, or ``(G,)`` for one curve.
        """
        h = self._epoch_index(epoch)
        g = _finite_1d(grid, "grid")
        y = np.broadcast_to(g, (self.n_curves, g.size)).copy()
        out = self._zt_log_prob(self.transform.to_model(y), h) + self.transform.log_abs_scale[:, None]
        below, above = self._beyond_limits(y)
        out = np.where(below | above, -np.inf, out)
        return self._out(np.where(self._seen[:, h : h + 1], np.nan, out))

    def prob_above(self, threshold, *, epoch: int | None = None):
        """``P(Y > threshold)`` at ``epoch`` (default: the last forecast epoch).

        ``threshold`` is a scalar or one value per curve ``(n,)``. Returns ``(n,)``, or a float
        for a forecast of one curve. For a minimised metric use :meth:`prob_below`.
        """
        p_le = self._cdf_at_threshold(threshold, epoch)
        return self._scalar_or_array(1.0 - p_le)

    def prob_below(self, threshold, *, epoch: int | None = None):
        """``P(Y < threshold)`` at ``epoch`` (default: the last); see :meth:`prob_above`."""
        return self._scalar_or_array(self._cdf_at_threshold(threshold, epoch))

    def prob_improve(self, threshold, *, epoch: int | None = None):
        """P(the value at ``epoch`` is better than ``threshold``) in this forecast's direction."""
        if self.direction == "minimize":
            return self.prob_below(threshold, epoch=epoch)
        return self.prob_above(threshold, epoch=epoch)

    # --- helpers ----------------------------------------------------------------------------------
    def _cdf_at_threshold(self, threshold, epoch: int | None) -> np.ndarray:
        h = self._epoch_index(epoch)
        thr = np.asarray(threshold, dtype=np.float64)
        if thr.ndim == 0:
            thr = np.full(self.n_curves, float(thr))
        if thr.shape != (self.n_curves,):
            raise InputError(
                f"threshold must be a scalar or have one value per curve ({self.n_curves},), "
                f"but has shape {thr.shape}"
            )
        if not np.all(np.isfinite(thr)):
            raise InputError(f"threshold must be finite, but got {threshold!r}")
        z = self.transform.to_model(thr[:, None])
        p = self._zt_cdf(z, h)
        # P(Y <= thr): for a decreasing map this is P(Z >= z(thr))
        p = np.where(self.transform.scale[:, None] > 0, p, 1.0 - p)
        p = self._cdf_beyond_limits(thr[:, None], p)[:, 0]
        return np.where(self._seen[:, h], np.nan, p)

    def _cdf_beyond_limits(self, y: np.ndarray, p: np.ndarray) -> np.ndarray:
        """``P(Y <= y)`` exactly 0 below the known low bound and 1 from the known high one on."""
        low, high = self.transform.limits
        p = np.clip(p, 0.0, 1.0)
        with np.errstate(invalid="ignore"):
            if low is not None:
                p = np.where(y < low, 0.0, p)
            if high is not None:
                p = np.where(y >= high, 1.0, p)
        return p

    def _epoch_index(self, epoch: int | None) -> int:
        if epoch is None:
            return len(self.epochs) - 1
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)):
            raise InputError(f"epoch must be an integer, but got {epoch!r}")
        if not (self.epochs[0] <= epoch <= self.epochs[-1]):
            raise InputError(
                f"epoch must be a forecast epoch in [{self.epochs[0]}, {self.epochs[-1]}], "
                f"but got {epoch}"
            )
        return int(epoch - self.epochs[0])

    def _check_values(self, values, name: str) -> np.ndarray:
        y = np.asarray(values, dtype=np.float64)
        want = (len(self.epochs),) if self._squeeze else (self.n_curves, len(self.epochs))
        if y.shape != want:
            raise InputError(f"{name} must have shape {want} (curves x future epochs), but has {y.shape}")
        y = y.reshape(self.n_curves, len(self.epochs))
        if not np.all(np.isfinite(y) | self._seen):  # epochs a curve has observed are ignored
            raise InputError(f"{name} must be finite, but contains {_first_bad(np.where(self._seen, 0.0, y))}")
        return np.where(self._seen, np.nan, y)

    def _hide_seen(self, a: np.ndarray) -> np.ndarray:
        """NaN at the ``(n, H)`` entries of epochs a curve has already observed."""
        return np.where(self._seen, np.nan, a) if self._seen.any() else a

    def _out(self, a: np.ndarray) -> np.ndarray:
        return a[0] if self._squeeze else a

    def _scalar_or_array(self, a: np.ndarray):
        return float(a[0]) if self._squeeze else a

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(n_curves={self.n_curves}, observed_epochs={_span(self.lengths)}, "
            f"epochs={self.epochs[0]}..{self.epochs[-1]}, direction={self.direction!r}, bounds={self.bounds!r})"
        )


def _check_probability(p, name: str) -> float:
    try:
        v = float(p)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a probability in (0, 1), but got {p!r}") from None
    if not (0.0 < v < 1.0) or math.isnan(v):
        raise InputError(f"{name} must be a probability in (0, 1), but got {p!r}")
    return v


def _finite_1d(a, name: str) -> np.ndarray:
    g = np.asarray(a, dtype=np.float64)
    if g.ndim != 1 or g.size == 0:
        raise InputError(f"{name} must be a non-empty 1-D array, but has shape {g.shape}")
    if not np.all(np.isfinite(g)):
        raise InputError(f"{name} must be finite, but contains {_first_bad(g)}")
    return g


def _first_bad(a: np.ndarray) -> str:
    idx = np.argwhere(~np.isfinite(a))[0]
    return f"{float(a[tuple(idx)])!r} at index {tuple(int(i) for i in idx)}"


def _span(lengths: np.ndarray) -> str:
    lo, hi = int(lengths.min()), int(lengths.max())
    return str(lo) if lo == hi else f"{lo}..{hi}"


class ConcatForecast(Forecast):
    """One forecast of curves of different lengths, made of one forecast per length.

    Part ``k`` forecasts the curves ``rows[k]`` over epochs ``T_k+1 .. max_epochs``; this
    forecast covers ``T_min+1 .. max_epochs`` and reads each curve from its part, offset by
    ``T_k - T_min``. Entries of epochs a curve has observed are never read (the base class
    masks them).
    """

    def __init__(self, parts: list[tuple[np.ndarray, Forecast]], batch: CurveBatch) -> None:
        super().__init__(
            epochs=np.arange(int(batch.lengths.min()) + 1, batch.max_epochs + 1), observed=batch.y,
            transform=batch.transform, direction=batch.direction, squeeze=False, lengths=batch.lengths,
            bounds=batch.bounds,
        )
        self.parts = [(rows, part, len(self.epochs) - len(part.epochs)) for rows, part in parts]

    def _gather(self, per_part, width: int | None = None) -> np.ndarray:
        """``(n, H)`` from each part's ``(n_k, H_k)`` (``width=None``), or ``(n, width)`` from
        each part's ``(n_k, width)``; a part may return ``None`` (left NaN)."""
        out = np.full((self.n_curves, len(self.epochs) if width is None else width), np.nan)
        for rows, part, offset in self.parts:
            got = per_part(rows, part, offset)
            if got is not None:
                out[rows, offset if width is None else 0 :] = got
        return out

    def _z_quantile(self, p: float) -> np.ndarray:
        return self._gather(lambda rows, part, off: part._z_quantile(p))

    def _z_mean(self) -> np.ndarray:
        return self._gather(lambda rows, part, off: part._z_mean())

    def _z_quantile_array(self, p: np.ndarray) -> np.ndarray:
        return self._gather(lambda rows, part, off: part._z_quantile_array(p[rows, off:]))

    def _z_mean_between(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        return self._gather(lambda rows, part, off: part._z_mean_between(lo[rows], hi[rows]))

    def _z_cdf(self, z: np.ndarray, h: int | None) -> np.ndarray:
        return self._per_epoch(lambda part, zz, hh: part._z_cdf(zz, hh), z, h)

    def _z_log_prob(self, z: np.ndarray, h: int | None) -> np.ndarray:
        return self._per_epoch(lambda part, zz, hh: part._z_log_prob(zz, hh), z, h)

    def _per_epoch(self, fn, z: np.ndarray, h: int | None) -> np.ndarray:
        if h is None:  # z (n, H): each part reads its own epochs (NaN where a curve observed them)
            return self._gather(lambda rows, part, off: fn(part, np.nan_to_num(z[rows, off:]), None))
        # z (n, G) at epoch index h; a part whose curves observed that epoch is left NaN
        return self._gather(lambda rows, part, off: fn(part, z[rows], h - off) if h >= off else None, z.shape[1])


class Predictor(ABC):
    """A forecaster: ``predict(curves, max_epochs=...)`` -> :class:`Forecast`.

    The PFN (:class:`lcpfn.LCPFN`), the MCMC baseline and the simple baselines all are one, and
    share :meth:`predict`'s validation: the shape rule (:mod:`lcpfn.validation`) and the map into
    model space (:mod:`lcpfn.normalization`). A subclass implements :meth:`_forecast` for curves
    of one length; curves of different lengths are forecast one length at a time and joined.
    """

    name: str = "predictor"
    native_length: int = 100
    """The run length (epochs) the forecaster reads natively."""

    def predict(
        self, curves, *, max_epochs: int, direction: Direction = "maximize", bounds: BoundsArg = "auto",
        keep_within: Bounds | str = "bounds",
    ) -> Forecast:
        """Forecast epochs ``T+1 .. max_epochs`` of curves observed for epochs ``1 .. T``.

        ``curves``: one curve ``(T,)``, curves of one length ``(n, T)``, or curves of different
        lengths (a list of 1-D arrays, NaN-padded rows, a DataFrame of runs as columns).
        ``direction``: ``"minimize"`` for a loss or an error. ``bounds``: the metric's range
        ``(low, high)``, ``None`` for an unknown side, ``"infer"``, or ``"auto"`` (``(0, 1)`` for
        values in ``[0, 1]``, ``(0, None)`` for a non-negative minimised metric, else
        ``"infer"``); the one used is ``forecast.bounds``. See :mod:`lcpfn.normalization`.
        ``keep_within``: the hard limits the forecast is truncated to; ``"bounds"`` (default) the
        known sides of ``bounds``, or ``(low, high)`` with ``None`` for no limit on a side.
        """
        return self._predict(
            curves, max_epochs=max_epochs, direction=direction, bounds=bounds, keep_within=keep_within
        )

    def _predict(
        self, curves, *, max_epochs, direction, bounds, forecast: Callable[[CurveBatch], Forecast] | None = None,
        keep_within: Bounds | str = "bounds",
    ) -> Forecast:
        """:meth:`predict` with another per-length forecast than :meth:`_forecast` (a subclass's
        options) and, with ``keep_within``, hard limits other than the known sides of ``bounds``
        (:func:`lcpfn.validation.check_keep_within`)."""
        batch = prepare_curves(
            curves, max_epochs=max_epochs, direction=direction, bounds=bounds, keep_within=keep_within
        )
        fn = self._forecast if forecast is None else forecast
        groups = batch.groups()
        if len(groups) == 1:
            return fn(batch)
        return ConcatForecast([(rows, fn(batch.subset(rows))) for rows in groups], batch)

    @abstractmethod
    def _forecast(self, batch: CurveBatch) -> Forecast:
        """The forecast of ``batch``'s curves, all of one length ``T`` (``batch.y`` is ``(n, T)``),
        over epochs ``T+1 .. batch.max_epochs``."""
