"""Validation of the inputs every forecaster (PFN, MCMC, baselines) shares."""

from __future__ import annotations

import logging
from typing import Literal, Sequence

import numpy as np

from lcpfn.errors import InputError
from lcpfn.forecast import ValueTransform

log = logging.getLogger(__name__)

Direction = Literal["maximize", "minimize"]


def check_curves(curves, *, max_epochs) -> tuple[np.ndarray, bool]:
    """Validate observed curves and the horizon.

    ``curves`` is 1-D ``(T,)`` (one curve) or 2-D ``(n, T)`` (``n`` curves observed for epochs
    ``1..T``). Returns the curves as float64 ``(n, T)`` and whether the input was 1-D.
    """
    if isinstance(max_epochs, bool) or not isinstance(max_epochs, (int, np.integer)):
        raise InputError(f"max_epochs must be an integer, but got {max_epochs!r}")
    max_epochs = int(max_epochs)
    if max_epochs < 2:
        raise InputError(f"max_epochs must be at least 2 but got {max_epochs}")
    try:
        arr = np.asarray(curves, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"curves must be a numeric 1-D or 2-D array: {exc}") from None
    if arr.ndim not in (1, 2):
        raise InputError(
            f"curves must be 1-D (one curve) or 2-D (n_curves, n_observed), but has shape {arr.shape}"
        )
    squeeze = arr.ndim == 1
    arr = arr.reshape(1, -1) if squeeze else arr
    n, t = arr.shape
    if n == 0 or t == 0:
        raise InputError(f"curves must contain at least one observed value, but has shape {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        i, j = (int(k) for k in np.argwhere(bad)[0])
        where = f"epoch {j + 1}" if squeeze else f"curve {i}, epoch {j + 1}"
        raise InputError(f"curves must be finite, but has {float(arr[i, j])!r} at {where}")
    if t >= max_epochs:
        raise InputError(
            f"the number of observed epochs ({t}) must be smaller than max_epochs ({max_epochs}): "
            "there is nothing left to forecast"
        )
    return arr, squeeze


def check_direction(direction) -> Direction:
    if direction not in ("maximize", "minimize"):
        raise InputError(f"direction must be 'maximize' or 'minimize', but got {direction!r}")
    return direction


Bounds = tuple[float | None, float | None]
# What every forecaster's ``predict(..., bounds=...)`` accepts (checked by :func:`check_bounds`).
BoundsArg = Bounds | Literal["infer"] | None


def check_bounds(bounds) -> Bounds | None:
    """Validate ``bounds``: ``None``, ``(low, high)``, a pair with ``None`` for an unknown side, or ``"infer"``.

    Returns ``None`` (values used as they are), or ``(low, high)`` with ``None`` for each side
    that is not known (``"infer"`` is ``(None, None)``). A known side is a finite number; when
    both are known, ``low < high``. Anything else raises :class:`InputError` naming the value.
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
        out.append(v)
    low, high = out
    if low is not None and high is not None and not low < high:
        raise InputError(f"bounds must be finite with low < high, but got {bounds!r}")
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
    transform = ValueTransform(np.full(n, scale), np.full(n, shift))
    z = transform.to_model(curves)
    outside = (z < -tolerance) | (z > 1 + tolerance)
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
    if ((z < -warn_tolerance) | (z > 1 + warn_tolerance)).any():
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
_SPAN_TINY = 1e-200  # keeps the scale finite for subnormal prefixes


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
    tolerance for noise applies instead, as before).
    """
    if bounds is None or (bounds[0] is not None and bounds[1] is not None):
        return unit_transform(curves, direction=direction, bounds=bounds)
    low, high = bounds
    beyond = np.zeros(curves.shape, dtype=bool)
    if low is not None:
        beyond |= curves < low
    if high is not None:
        beyond |= curves > high
    if beyond.any():
        i, j = (int(k) for k in np.argwhere(beyond)[0])
        raise InputError(
            f"curve {i} has value {float(curves[i, j])!r} at epoch {j + 1}, outside bounds={bounds!r}: "
            "a known bound must hold for every observed value (use None for a side that is not known)"
        )
    s = 1.0 if direction == "maximize" else -1.0
    good, bad = (high, low) if direction == "maximize" else (low, high)
    u = s * curves
    worst, best = u.min(axis=1), u.max(axis=1)
    biggest = np.abs(curves).max(axis=1)
    floor = np.where(biggest > 0, SPAN_FLOOR_REL * biggest, SPAN_FLOOR_ABS)
    floor = np.maximum(floor, _SPAN_TINY)
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
    return ValueTransform(scale=s * a, shift=c)


def prepare_unit_curves(
    curves, *, max_epochs, direction, bounds
) -> tuple[np.ndarray, bool, Direction, ValueTransform]:
    """Everything a unit-interval forecaster checks before it forecasts, in one call.

    Returns the curves ``(n, T)`` in caller units, whether the input was 1-D, the checked
    direction and the map into model space: :func:`unit_transform` for ``bounds=None`` or
    ``(low, high)``, the prefix-inferred :func:`infer_transform` when a side is ``None`` or
    ``bounds="infer"``.
    """
    arr, squeeze = check_curves(curves, max_epochs=max_epochs)
    direction = check_direction(direction)
    transform = infer_transform(arr, direction=direction, bounds=check_bounds(bounds))
    return arr, squeeze, direction, transform


def as_float_sequence(values: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64)
    if a.ndim != 1 or a.size == 0 or not np.all(np.isfinite(a)):
        raise InputError(f"{name} must be a non-empty 1-D array of finite numbers, but got {values!r}")
    return a
