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


def check_bounds(bounds) -> tuple[float, float] | None:
    if bounds is None:
        return None
    try:
        low, high = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise InputError(f"bounds must be a pair (low, high) of numbers, but got {bounds!r}") from None
    if not (np.isfinite(low) and np.isfinite(high)) or not low < high:
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
            "pass bounds=(low, high) that contain the metric's range"
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


def prepare_unit_curves(
    curves, *, max_epochs, direction, bounds
) -> tuple[np.ndarray, bool, Direction, ValueTransform]:
    """Everything a unit-interval forecaster checks before it forecasts, in one call.

    Returns the curves ``(n, T)`` in caller units, whether the input was 1-D, the checked
    direction and the :func:`unit_transform` into model space.
    """
    arr, squeeze = check_curves(curves, max_epochs=max_epochs)
    direction = check_direction(direction)
    transform = unit_transform(arr, direction=direction, bounds=check_bounds(bounds))
    return arr, squeeze, direction, transform


def as_float_sequence(values: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64)
    if a.ndim != 1 or a.size == 0 or not np.all(np.isfinite(a)):
        raise InputError(f"{name} must be a non-empty 1-D array of finite numbers, but got {values!r}")
    return a
