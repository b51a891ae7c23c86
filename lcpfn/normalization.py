"""Normalisation: how a caller's values map into a forecaster's model space, in one place.

Every forecaster (the PFN, MCMC, the baselines) works on increasing curves that lie mostly in
``[0, 1]`` (the reference prior's scale); a caller's values ``y`` map there by a per-curve affine
:class:`ValueTransform` ``z = scale * y + shift``. What decides the map lives here and only
here, for every door (``predict``, the CLI, the app, the Optuna pruner):

* :func:`check_bounds` reads the ``bounds`` argument;
* :func:`default_bounds` is the rule for ``bounds="auto"`` (the default): values already in
  ``[0, 1]`` keep the unit map, a minimised metric that is never negative (a loss) gets
  ``(0, None)``, anything else is inferred from each curve's prefix (``"infer"``);
* :func:`unit_transform` (both sides known) and :func:`infer_transform` (a side unknown) build
  the map; :func:`study_bounds` is the Optuna pruner's map from the study's finished trials.

Measurements behind the constants: ``docs/normalization.md``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np

from lcpfn import limits
from lcpfn.errors import InputError

log = logging.getLogger(__name__)

Direction = Literal["maximize", "minimize"]
"""Which way is better: ``"maximize"`` (accuracy) or ``"minimize"`` (loss, error)."""

Bounds = tuple[float | None, float | None]


@dataclass(frozen=True)
class ValueTransform:
    """Per-curve affine map ``z = scale * y + shift`` from the caller's units into model space.

    ``scale`` and ``shift`` have shape ``(n,)``; ``scale`` is never zero. ``limits`` are the
    caller's known bounds ``(low, high)`` (caller units, the same for every curve; ``None``: that
    side is not known): every forecast made with this map is truncated to them
    (:class:`lcpfn.forecast.Forecast`). ``bounds=None`` and inferred sides have none.
    """

    scale: np.ndarray
    shift: np.ndarray
    limits: Bounds = (None, None)

    @classmethod
    def identity(cls, n: int) -> ValueTransform:
        return cls(np.ones(n), np.zeros(n))

    def to_model(self, y: np.ndarray) -> np.ndarray:
        """``y`` of shape ``(n, ...)`` in caller units -> model space."""
        extra = (1,) * (y.ndim - 1)
        return self.scale.reshape(-1, *extra) * y + self.shift.reshape(-1, *extra)

    def to_caller(self, z: np.ndarray) -> np.ndarray:
        """``z`` of shape ``(n, ...)`` in model space -> caller units."""
        extra = (1,) * (z.ndim - 1)
        return (z - self.shift.reshape(-1, *extra)) / self.scale.reshape(-1, *extra)

    @property
    def log_abs_scale(self) -> np.ndarray:
        return np.log(np.abs(self.scale))

    @property
    def has_limits(self) -> bool:
        return self.limits[0] is not None or self.limits[1] is not None

    def z_limits(self) -> tuple[np.ndarray, np.ndarray]:
        """The model-space interval ``[z_lo, z_hi]`` the known bounds map to: two ``(n,)`` arrays,
        ``-inf`` / ``inf`` on a side without a bound (a decreasing map swaps the sides)."""
        n = self.scale.shape[0]
        low, high = self.limits
        lo, hi = np.full(n, -np.inf), np.full(n, np.inf)
        up = self.scale > 0
        if low is not None:
            z = self.scale * low + self.shift
            lo, hi = np.where(up, z, lo), np.where(up, hi, z)
        if high is not None:
            z = self.scale * high + self.shift
            lo, hi = np.where(up, lo, z), np.where(up, z, hi)
        return lo, hi

    def subset(self, rows: np.ndarray) -> ValueTransform:
        """The map of the curves ``rows``."""
        return ValueTransform(self.scale[rows], self.shift[rows], self.limits)


def check_direction(direction) -> Direction:
    if direction not in ("maximize", "minimize"):
        raise InputError(f"direction must be 'maximize' or 'minimize', but got {direction!r}")
    return direction


# What every forecaster's ``predict(..., bounds=...)`` accepts (read by :func:`resolve_bounds`).
BoundsArg = Bounds | Literal["auto", "infer"] | None


def check_bounds(bounds) -> Bounds | None:
    """Validate ``bounds``: ``None``, ``(low, high)``, a pair with ``None`` for an unknown side, or ``"infer"``.

    Returns ``None`` (values used as they are), or ``(low, high)`` with ``None`` for each side
    that is not known (``"infer"`` is ``(None, None)``). A known side is a finite number within
    ``±MAX_ABS_VALUE``; when both are known, ``low < high`` and they are at least ``MIN_SPAN``
    apart (:mod:`lcpfn.limits`: a narrower or wider range has no map into model space and back
    in float64). Anything else raises :class:`InputError` naming the value.
    """
    if bounds is None:
        return None
    if isinstance(bounds, str):
        if bounds == "infer":
            return None, None
        raise InputError(
            f"bounds must be a pair (low, high), with None for an unknown side, or 'infer', but got {bounds!r}"
        )
    try:
        pair = tuple(bounds)
    except TypeError:
        pair = ()
    if len(pair) != 2:
        raise InputError(
            f"bounds must be a pair (low, high) of numbers, with None for an unknown side, or 'infer', "
            f"but got {bounds!r}"
        )
    out: list[float | None] = []
    for b in pair:
        if b is None:
            out.append(None)
            continue
        try:
            v = float(b)
        except (TypeError, ValueError):
            raise InputError(
                f"bounds must be a pair (low, high) of numbers, with None for an unknown side, "
                f"but got {bounds!r}"
            ) from None
        if not np.isfinite(v):
            raise InputError(
                f"bounds must be finite with low < high (use None, not infinity, for an unknown side), "
                f"but got {bounds!r}"
            )
        if abs(v) > limits.MAX_ABS_VALUE:
            raise InputError(
                f"bounds must lie within ±{limits.MAX_ABS_VALUE:g} (see docs/limits.md), but got {bounds!r}"
            )
        out.append(v)
    low, high = out
    if low is not None and high is not None:
        if not low < high:
            raise InputError(f"bounds must be finite with low < high, but got {bounds!r}")
        if high - low < limits.MIN_SPAN:
            raise InputError(
                f"bounds must be at least {limits.MIN_SPAN:g} apart (see docs/limits.md), but got {bounds!r}"
            )
    return low, high


def unit_transform(
    curves: np.ndarray,
    *,
    direction: Direction,
    bounds: tuple[float, float] | None,
    tolerance: float = 1.0,
    warn_tolerance: float = 0.1,
) -> ValueTransform:
    """The map into the unit-interval space of the reference prior (increasing curves in [0, 1]).

    With ``bounds``, ``[low, high]`` maps onto ``[0, 1]`` (flipped for ``minimize``). Without,
    values are taken as they are (``1 - y`` for ``minimize``), as in the paper. The prior's
    noiseless curves lie in ``[0, 1]`` but its noise (std up to ~0.4) carries observed values a
    little outside, so values within ``tolerance`` of ``[0, 1]`` are accepted (with a logged
    warning beyond ``warn_tolerance``); anything further out is not on this scale — a percentage
    or an unbounded loss — and raises an error asking for ``bounds``.
    """
    n = curves.shape[0]
    low, high = (0.0, 1.0) if bounds is None else bounds
    if direction == "maximize":
        scale, shift = 1.0 / (high - low), -low / (high - low)
    else:
        scale, shift = -1.0 / (high - low), high / (high - low)
    transform = ValueTransform(np.full(n, scale), np.full(n, shift), (None, None) if bounds is None else bounds)
    z = transform.to_model(curves)
    with np.errstate(invalid="ignore"):  # NaN padding after a curve's end compares False
        outside = (z < -tolerance) | (z > 1 + tolerance)
        far = (z < -warn_tolerance) | (z > 1 + warn_tolerance)
    if outside.any():
        i, j = (int(k) for k in np.argwhere(outside)[0])
        hint = (
            "pass bounds=(low, high) that contain the metric's range, or (low, None), (None, high) or "
            "'infer' to infer the unknown side from the observed values"
            if bounds is None
            else f"the values do not lie within bounds={bounds}"
        )
        raise InputError(
            f"curve {i} has value {float(curves[i, j])!r} at epoch {j + 1}, outside the range this model "
            f"forecasts ([0, 1] after normalisation): {hint}"
        )
    if far.any():
        log.warning(
            "some observed values lie more than %.2g outside [0, 1] after normalisation; the model "
            "reads them as noise. Pass bounds=(low, high) if the metric has another range.",
            warn_tolerance,
        )
    return transform


# Constants of the inferred map (see infer_transform; measured in docs/normalization.md).
GOOD_BOUND_WORST_Z = 0.2  # only the good bound known: the prefix's worst value (bound -> 1)
BAD_BOUND_BEST_Z = 0.8  # only the bad bound known: the prefix's best value (bound -> 0)
NO_BOUND_WORST_Z = 0.3  # nothing known: the prefix's worst value ...
NO_BOUND_BEST_Z = 0.5  # ... and its best value
SPAN_FLOOR_REL = 0.1  # the smallest span, relative to the prefix's largest |y| ...
SPAN_FLOOR_ABS = 1.0  # ... or this, for an all-zero prefix


def infer_transform(
    curves: np.ndarray, *, direction: Direction, bounds: Bounds | None
) -> ValueTransform:
    """The per-curve affine map into model space, with unknown bounds inferred from the prefix.

    ``curves`` ``(n, T)`` are the observed prefixes in caller units; ``bounds`` is as returned by
    :func:`check_bounds`. With ``bounds=None`` or both sides known this is :func:`unit_transform`
    (today's map, its checks and errors included). Otherwise each curve ``i`` gets its own
    ``z = scale_i * y + shift_i`` computed from its own observed values only — never from the
    future it forecasts — so it is a legal input transform for the PFN and its Jacobian is exact
    and constant: densities in caller units are model-space densities times ``|scale_i|``.

    Write ``u = s y`` with ``s = +1`` for ``"maximize"`` and ``-1`` for ``"minimize"``, so higher
    ``u`` is better (the model space is increasing: higher is better, mostly in ``[0, 1]``). The
    *good* bound is ``high`` (maximize) or ``low`` (minimize), the *bad* bound the other one;
    ``u_good = s * good``, ``u_bad = s * bad``. Over curve ``i``'s prefix ``worst = min u`` and
    ``best = max u``; ``floor`` is defined below. Then ``z = a u + c``, i.e. ``scale = s a``:

    * only the good bound known (a loss ``>= 0`` minimised: ``(0, None)``; an accuracy maximised
      with ``(None, 100)``)::

          span = max(u_good - worst, floor);  z = 1 - (u_good - u) / (1.25 span)

      The bound maps to 1 and the prefix's worst value to ``GOOD_BOUND_WORST_Z = 0.2``. For a
      loss with ``low=0`` this is ``z = 1 - y / (1.25 max(prefix))``, the normalisation the
      priors were motivated with (``docs/priors.md``): every later improvement lands in
      ``[0.2, 1]``, and a relapse of up to a quarter of ``span`` past the worst value still in
      ``[0, 1]``.
    * only the bad bound known (an accuracy ``>= 0`` with no known top: ``(0, None)``)::

          span = max(best - u_bad, floor);  z = (u - u_bad) / (1.25 span)

      The bound maps to 0 and the prefix's best value to ``BAD_BOUND_BEST_Z = 0.8``: head-room
      for an improvement of a quarter of the distance from the bound (the mirror image of the
      case above).
    * nothing known (``"infer"`` or ``(None, None)``)::

          span = max(best - worst, floor);  z = 0.3 + 0.2 (u - worst) / span

      The prefix's worst value maps to ``NO_BOUND_WORST_Z = 0.3`` and its best to
      ``NO_BOUND_BEST_Z = 0.5``, so later values still land in ``[0, 1]`` if they improve by up
      to 2.5 prefix spans or fall back by up to 1.5. Early prefixes span only part of a curve's
      eventual range, hence the generous head-room; the split 0.3 / 0.5 beat 0.2 / 0.6 in the
      reference model's log-likelihood on the real curves (``docs/normalization.md``).

    ``floor = SPAN_FLOOR_REL * max|y| = 0.1 max_t |y_it|`` over the curve's prefix, or
    ``SPAN_FLOOR_ABS = 1`` (in caller units) if the prefix is all zeros. So one point, a constant
    prefix or a prefix sitting on its known bound still gets a finite, nonzero scale
    (``|scale| <= 8 / max|y|``; an all-zero prefix gets ``|scale| <= 0.8``), never a division by
    zero; and a near-constant prefix (a run stuck at chance) reads as nearly flat rather than
    having its noise blown up to the whole range. The fractions of real curves that land in
    ``[0, 1]`` with these constants are in ``docs/normalization.md``
    (``benchmarks/normalization_coverage.py``).

    A known bound is a hard limit of the metric: an observed value beyond it raises
    :class:`InputError` naming the value (with both bounds known, :func:`unit_transform`'s
    tolerance for noise applies instead, as before). The known sides are the map's ``limits``:
    forecasts are truncated to them.
    """
    if bounds is None:
        return unit_transform(curves, direction=direction, bounds=None)
    low, high = bounds
    if low is not None and high is not None:
        return unit_transform(curves, direction=direction, bounds=(low, high))
    check_within(
        curves, (low, high), f"bounds={bounds!r}: a known bound must hold for every observed value "
        "(use None for a side that is not known)",
    )
    s = 1.0 if direction == "maximize" else -1.0
    good, bad = (high, low) if direction == "maximize" else (low, high)
    u = s * curves
    worst, best = np.nanmin(u, axis=1), np.nanmax(u, axis=1)
    biggest = np.nanmax(np.abs(curves), axis=1)
    floor = np.where(biggest > 0, SPAN_FLOOR_REL * biggest, SPAN_FLOOR_ABS)
    floor = np.maximum(floor, limits.MIN_SPAN)  # keeps the scale finite for subnormal prefixes
    if good is not None:
        u_good = s * good
        span = np.maximum(u_good - worst, floor)
        a = (1.0 - GOOD_BOUND_WORST_Z) / span  # z = 1 - a (u_good - u)
        c = 1.0 - a * u_good
    elif bad is not None:
        u_bad = s * bad
        span = np.maximum(best - u_bad, floor)
        a = BAD_BOUND_BEST_Z / span  # z = a (u - u_bad)
        c = -a * u_bad
    else:
        span = np.maximum(best - worst, floor)
        a = (NO_BOUND_BEST_Z - NO_BOUND_WORST_Z) / span  # z = W + a (u - worst)
        c = NO_BOUND_WORST_Z - a * worst
    # z = a u + c = (a s) y + c
    return ValueTransform(scale=s * a, shift=c, limits=(low, high))



def check_within(curves: np.ndarray, limits: Bounds, what: str) -> None:
    """Raise :class:`InputError` naming the first value of ``curves`` ``(n, T)`` beyond a known side of
    ``limits`` (NaN padding after a curve's end is ignored); ``what`` names the limits in the message."""
    low, high = limits
    beyond = np.zeros(curves.shape, dtype=bool)
    with np.errstate(invalid="ignore"):  # NaN padding after a curve's end compares False
        if low is not None:
            beyond |= curves < low
        if high is not None:
            beyond |= curves > high
    if beyond.any():
        i, j = (int(k) for k in np.argwhere(beyond)[0])
        raise InputError(f"curve {i} has value {float(curves[i, j])!r} at epoch {j + 1}, outside {what}")


def widen_limits(known: Bounds, *values: float | np.ndarray) -> Bounds:
    """The known sides of ``known``, each widened just enough to hold ``values`` (unknown sides stay
    ``None``): the hard limits for a forecast whose map is a study-derived scale (the Optuna pruner,
    the Ray scheduler), which widen a known side the same way."""
    low, high = known
    if not values:
        return low, high
    lo = min(float(np.min(v)) for v in values)
    hi = max(float(np.max(v)) for v in values)
    return (None if low is None else min(low, lo)), (None if high is None else max(high, hi))


def default_bounds(curves: np.ndarray, *, direction: Direction) -> Bounds:
    """The bounds ``bounds="auto"`` (the default of every ``predict``) stands for.

    ``curves`` ``(n, T)`` in caller units (NaN after a curve's end is ignored). The rule is the
    same for every curve of the call, so a batch is read consistently:

    * every value in ``[0, 1]``: ``(0, 1)``, the model's own scale (an accuracy, a fraction);
    * ``direction="minimize"`` and no value below 0: ``(0, None)`` (a loss, an error rate in %);
    * anything else: ``(None, None)``, both sides inferred from each curve's prefix.
    """
    lo, hi = float(np.nanmin(curves)), float(np.nanmax(curves))
    if lo >= 0.0 and hi <= 1.0:
        return 0.0, 1.0
    if direction == "minimize" and lo >= 0.0:
        return 0.0, None
    return None, None


def resolve_bounds(bounds, curves: np.ndarray, *, direction: Direction) -> Bounds:
    """``bounds`` as given to ``predict`` -> the ``(low, high)`` actually used (``None``: inferred).

    ``None`` (values as they are) is the unit map ``(0, 1)``; ``"auto"`` is
    :func:`default_bounds`; anything else is read by :func:`check_bounds`.
    """
    if isinstance(bounds, str) and bounds == "auto":
        return default_bounds(curves, direction=direction)
    checked = check_bounds(bounds)
    return (0.0, 1.0) if checked is None else checked


def normalize(curves: np.ndarray, *, direction: Direction, bounds) -> tuple[ValueTransform, Bounds]:
    """The map into model space for ``predict(curves, direction=..., bounds=...)``.

    Returns the :class:`ValueTransform` and the bounds it was built from (what a forecast
    reports as ``forecast.bounds``): :func:`unit_transform` when both sides are known (with
    ``bounds=None`` its error asks for ``bounds``), :func:`infer_transform` otherwise. The map's
    known sides are its ``limits``, the bounds forecasts keep to (none for ``bounds=None``).
    Every map is checked by :func:`check_transform`.
    """
    used = resolve_bounds(bounds, curves, direction=direction)
    if bounds is None:
        transform = unit_transform(curves, direction=direction, bounds=None)
    else:
        transform = infer_transform(curves, direction=direction, bounds=used)
    check_transform(transform)
    return transform, used


MODEL_REACH = 1e6
"""The model-space values a forecaster may return lie within ``±MODEL_REACH`` (the PFN's bins and
tails span a few units; :func:`check_transform` asks that all of them map back finitely)."""


def check_transform(transform: ValueTransform) -> None:
    """Refuse a map whose forecasts could not come back finite: ``scale`` and ``shift`` must be
    finite with ``scale != 0``, and ``to_caller`` of every model-space value within
    ``±MODEL_REACH`` finite. With values and bounds within :mod:`lcpfn.limits` every map built
    here passes (``|scale|`` stays within about ``1e±151``); this is the guarantee, checked."""
    n = transform.scale.shape[0]
    with np.errstate(all="ignore"):
        ends = transform.to_caller(np.tile([-MODEL_REACH, MODEL_REACH], (n, 1)))
        ok = (
            np.isfinite(transform.scale) & np.isfinite(transform.shift) & (transform.scale != 0)
            & np.isfinite(transform.log_abs_scale) & np.isfinite(ends).all(axis=1)
        )
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        raise InputError(
            f"curve {i} cannot be forecast in float64: its map into model space z = scale * y + shift has "
            f"scale={float(transform.scale[i])!r}, shift={float(transform.shift[i])!r}; the curve's values and "
            f"bounds span too wide or too narrow a range (see docs/limits.md)"
        )


STUDY_MARGIN = 1.0
""":func:`study_bounds`: the study's scale (start level to threshold) is widened by this many times
itself on each side, so it fills the middle third of ``[0, 1]``: the reference prior's curves rise
by 0.16 (median) and 0.28 (75th percentile) over 100 epochs, so the best curve's rise maps to a
large but ordinary rise under the prior."""


def study_bounds(
    curve: np.ndarray, *, threshold: float, starts: list[float], known: Bounds = (None, None)
) -> tuple[float, float]:
    """``(low, high)`` for one trial of a study, from the study's finished trials (the Optuna pruner).

    ``curve`` ``(T,)`` is the trial's observed values, ``threshold`` the value to beat (the
    study's best), ``starts`` the first reported value of each finished trial. The study's scale
    is the gap between its typical start (the median of ``starts``, or the curve's first value)
    and the threshold; that gap fills the middle ``1 / (1 + 2 m)`` of ``[0, 1]``
    (``m = STUDY_MARGIN``). A known side of ``known`` replaces the derived one (the other keeps
    the derived width); the curve and the threshold are always inside.
    """
    known_low, known_high = known
    if known_low is not None and known_high is not None:
        low, high = known_low, known_high
    else:
        start = float(np.median(starts)) if starts else float(curve[0])
        span = abs(threshold - start)
        if not span > 0.0:
            span = 0.1 * max(1.0, abs(threshold))
        low = min(start, threshold) - STUDY_MARGIN * span
        high = max(start, threshold) + STUDY_MARGIN * span
        width = high - low
        if known_low is not None:  # one known side: the other as derived (if on its side)
            low, high = known_low, high if high > known_low else known_low + width
        elif known_high is not None:
            low, high = low if low < known_high else known_high - width, known_high
    return min(low, threshold, float(curve.min())), max(high, threshold, float(curve.max()))


def describe_bounds(bounds: Bounds) -> str:
    """``(0.0, None)`` -> ``"low 0, high inferred from each curve"``: the map in words (CLI, app)."""
    low, high = bounds
    if low is not None and high is not None:
        return f"range [{low:g}, {high:g}]"
    if low is None and high is None:
        return "range inferred from each curve's observed values"
    side = f"low {low:g}, high" if low is not None else f"high {high:g}, low"
    return f"{side} inferred from each curve's observed values"
