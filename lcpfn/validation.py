"""The shape rule every door shares (``predict`` of every forecaster, the CLI, the app, the pruner).

A call forecasts ``n`` curves observed at epochs ``1..T_i``. They come as

* one curve: a 1-D array ``(T,)`` (or a pandas ``Series``);
* curves of one length: a 2-D array ``(n, T)``;
* curves of different lengths: a list of 1-D arrays, or a 2-D array padded with NaN after each
  curve's end (a pandas ``DataFrame`` holds one run per *column*, as a CSV file does).

Every curve has at least :data:`MIN_OBSERVED` values, all finite, and fewer than ``max_epochs``.
NaN is allowed only as padding after a curve's last value. Sizes and magnitudes are capped
(:mod:`lcpfn.limits`, ``docs/limits.md``): each cap is checked before the array it bounds is
allocated.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lcpfn import limits
from lcpfn.errors import InputError
from lcpfn.normalization import (
    Bounds,
    Direction,
    ValueTransform,
    check_bounds,
    check_direction,
    check_within,
    normalize,
)

MIN_OBSERVED = 1
"""Fewest observed values a curve needs before it is forecast (the same at every door)."""


@dataclass(frozen=True)
class CurveBatch:
    """Validated curves and the map into model space.

    Attributes:
        y: ``(n, T_max)`` float64 observed values in caller units, NaN after curve ``i``'s end.
        lengths: ``(n,)`` int, the number of observed epochs ``T_i`` of each curve.
        squeeze: the input was one 1-D curve (results come back 1-D).
        direction: the checked direction.
        transform: the per-curve map into model space.
        bounds: the bounds the map was built from (``None`` for a side inferred from the prefix).
        max_epochs: the last epoch to forecast.
    """

    y: np.ndarray
    lengths: np.ndarray
    squeeze: bool
    direction: Direction
    transform: ValueTransform
    bounds: Bounds
    max_epochs: int

    @property
    def z(self) -> np.ndarray:
        """``(n, T_max)`` the observed values in model space (NaN padding kept)."""
        return self.transform.to_model(self.y)

    def groups(self) -> list[np.ndarray]:
        """Row indices of the curves of each distinct length, shortest first."""
        return [np.flatnonzero(self.lengths == t) for t in np.unique(self.lengths)]

    def subset(self, rows: np.ndarray) -> CurveBatch:
        """The curves ``rows`` (all of one length), unpadded: ``y`` is ``(len(rows), T)``."""
        t = int(self.lengths[rows[0]])
        if np.any(self.lengths[rows] != t):
            raise AssertionError("subset() takes curves of one length")
        return CurveBatch(
            y=self.y[rows, :t], lengths=self.lengths[rows], squeeze=False, direction=self.direction,
            transform=self.transform.subset(rows), bounds=self.bounds, max_epochs=self.max_epochs,
        )


def check_max_epochs(max_epochs) -> int:
    if isinstance(max_epochs, bool) or not isinstance(max_epochs, (int, np.integer)):
        raise InputError(f"max_epochs must be an integer, but got {max_epochs!r}")
    if max_epochs < 2:
        raise InputError(f"max_epochs must be at least 2 but got {int(max_epochs)}")
    if max_epochs > limits.MAX_EPOCHS:
        raise InputError(
            f"max_epochs must be at most {limits.MAX_EPOCHS} but got {int(max_epochs)} (see docs/limits.md)"
        )
    return int(max_epochs)


def check_curves(
    curves, *, max_epochs, max_curves: int | None = limits.MAX_CURVES
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Validate observed curves and the horizon (the shape rule of the module docstring).

    Returns the curves as float64 ``(n, T_max)`` padded with NaN, their lengths ``(n,)`` and
    whether the input was one 1-D curve. ``max_curves``: the most curves accepted (``None``: no
    cap, for a caller that forecasts them chunk by chunk; the other limits still hold).
    """
    max_epochs = check_max_epochs(max_epochs)
    arr, squeeze = _as_padded(curves, max_curves=max_curves)
    if arr.ndim not in (1, 2):
        raise InputError(
            f"curves must be 1-D (one curve) or 2-D (n_curves, n_observed), but has shape {arr.shape}"
        )
    arr = arr.reshape(1, -1) if arr.ndim == 1 else arr
    n, t = arr.shape
    _check_sizes(n, t, max_curves=max_curves)
    if n == 0 or t == 0:
        raise InputError(f"curves must contain at least one observed value, but has shape {arr.shape}")
    isnan = np.isnan(arr)
    lengths = t - np.argmin(isnan[:, ::-1], axis=1)  # index after the last non-NaN value
    lengths[isnan.all(axis=1)] = 0

    def where(i: int, j: int) -> str:
        return f"epoch {j + 1}" if squeeze else f"curve {i}, epoch {j + 1}"

    inf = np.isinf(arr)
    if inf.any():
        i, j = (int(k) for k in np.argwhere(inf)[0])
        raise InputError(f"curves must be finite, but has {float(arr[i, j])!r} at {where(i, j)}")
    with np.errstate(invalid="ignore"):  # NaN padding compares False
        huge = np.abs(arr) > limits.MAX_ABS_VALUE
    if huge.any():
        i, j = (int(k) for k in np.argwhere(huge)[0])
        raise InputError(
            f"curves must lie within ±{limits.MAX_ABS_VALUE:g} (rescale them; see docs/limits.md), "
            f"but has {float(arr[i, j])!r} at {where(i, j)}"
        )
    inside = isnan & (np.arange(t)[None, :] < lengths[:, None])
    if inside.any():
        i, j = (int(k) for k in np.argwhere(inside)[0])
        raise InputError(
            f"curves must be finite, but has nan at {where(i, j)}, before the curve's last value at "
            f"epoch {int(lengths[i])} (NaN may only pad a curve after its end)"
        )
    short = np.flatnonzero(lengths < MIN_OBSERVED)
    if short.size:
        i = int(short[0])
        name = "the curve" if squeeze else f"curve {i}"
        raise InputError(
            f"{name} has {int(lengths[i])} observed values; at least {MIN_OBSERVED} are needed to forecast"
        )
    long = np.flatnonzero(lengths >= max_epochs)
    if long.size:
        i = int(long[0])
        name = "" if squeeze or n == 1 else f" of curve {i}"
        raise InputError(
            f"the number of observed epochs{name} ({int(lengths[i])}) must be smaller than max_epochs "
            f"({max_epochs}): there is nothing left to forecast"
        )
    marginals = n * (max_epochs - int(lengths.min()))
    if marginals > limits.MAX_MARGINALS:
        raise InputError(
            f"curves ({n}) times the epochs to forecast ({max_epochs - int(lengths.min())}, up to max_epochs="
            f"{max_epochs}) make {marginals} marginals, more than the {limits.MAX_MARGINALS} one forecast holds: "
            "forecast fewer curves per call (see docs/limits.md)"
        )
    return arr[:, : int(lengths.max())], lengths.astype(np.int64), squeeze


def _check_sizes(n: int, t: int, *, max_curves: int | None) -> None:
    """The caps on ``n`` curves of up to ``t`` observed values (:mod:`lcpfn.limits`)."""
    if max_curves is not None and n > max_curves:
        raise InputError(
            f"curves has {n} curves, more than the {max_curves} one call forecasts: split them into several calls "
            "(see docs/limits.md)"
        )
    if t > limits.MAX_OBSERVED:
        raise InputError(
            f"curves has {t} observed values in a curve, more than the {limits.MAX_OBSERVED} accepted "
            "(see docs/limits.md)"
        )
    if n * t > limits.MAX_INPUT_VALUES:
        raise InputError(
            f"curves has {n} curves of up to {t} values ({n * t} cells padded), more than the "
            f"{limits.MAX_INPUT_VALUES} accepted: forecast fewer curves per call (see docs/limits.md)"
        )


def _as_padded(curves, *, max_curves: int | None) -> tuple[np.ndarray, bool]:
    """Any accepted layout -> a float64 array (1-D or 2-D, maybe NaN-padded) and whether it was 1-D.

    Ragged curves are measured against the size caps before the padded array is allocated."""
    if hasattr(curves, "columns") and hasattr(curves, "to_numpy"):  # a pandas DataFrame: runs as columns
        try:
            return np.asarray(curves.to_numpy(dtype=np.float64)).T, False
        except (TypeError, ValueError) as exc:
            raise InputError(f"curves (a DataFrame, one run per column) must be numeric: {exc}") from None
    if isinstance(curves, (list, tuple)) and curves and all(np.ndim(c) == 1 for c in curves):
        if max_curves is not None and len(curves) > max_curves:
            _check_sizes(len(curves), 0, max_curves=max_curves)
        rows = [_numeric(c, f"curve {i}") for i, c in enumerate(curves)]
        if len({len(r) for r in rows}) > 1:  # ragged: pad with NaN after each curve's end
            _check_sizes(len(rows), max(len(r) for r in rows), max_curves=max_curves)
            out = np.full((len(rows), max(len(r) for r in rows)), np.nan)
            for i, r in enumerate(rows):
                out[i, : len(r)] = r
            return out, False
        return np.stack(rows), False
    arr = _numeric(curves, "curves")
    return arr, arr.ndim == 1


def _numeric(values, name: str) -> np.ndarray:
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} must be a numeric 1-D or 2-D array: {exc}") from None


def prepare_curves(
    curves, *, max_epochs, direction, bounds, max_curves: int | None = limits.MAX_CURVES, keep_within="bounds"
) -> CurveBatch:
    """Everything a forecaster checks before it forecasts, in one call: the shape rule, the
    direction and the map into model space (:func:`lcpfn.normalization.normalize`).
    ``max_curves`` as in :func:`check_curves`; ``keep_within`` as in :func:`check_keep_within`."""
    arr, lengths, squeeze = check_curves(curves, max_epochs=max_epochs, max_curves=max_curves)
    direction = check_direction(direction)
    transform, used = normalize(arr, direction=direction, bounds=bounds)
    if not (isinstance(keep_within, str) and keep_within == "bounds"):
        transform = dataclasses.replace(transform, limits=check_keep_within(keep_within, arr))
    return CurveBatch(
        y=arr, lengths=lengths, squeeze=squeeze, direction=direction, transform=transform,
        bounds=used, max_epochs=int(max_epochs),
    )


def check_keep_within(keep_within, curves: np.ndarray) -> Bounds:
    """The hard limits a forecast is truncated to, when they are not the ``bounds`` of the map.

    ``keep_within`` is ``"bounds"`` (the default of ``predict``: the known sides of ``bounds``), or
    ``(low, high)`` with ``None`` for a side without a limit — e.g. ``(None, None)`` for a map from
    a range that is only a scale (the Optuna pruner's study-derived range), or ``(0, None)`` for a
    loss mapped with such a range. Every observed value must lie within the limits.
    """
    checked = check_bounds(keep_within)
    if checked is None:
        raise InputError("keep_within must be 'bounds' or a pair (low, high) with None for no limit, but got None")
    check_within(curves, checked, f"keep_within={keep_within!r}")
    return checked


def as_float_sequence(values: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64)
    if a.ndim != 1 or a.size == 0 or not np.all(np.isfinite(a)):
        raise InputError(f"{name} must be a non-empty 1-D array of finite numbers, but got {values!r}")
    return a

