"""Scores of a forecast against the values that actually followed (the paper's §4.1 metric).

Every function takes a :class:`~lcpfn.forecast.Forecast` of ``n`` curves over ``H`` future epochs
and the true values ``truth`` of those epochs, ``(n, H)`` (or ``(H,)`` for a forecast of one
curve), in the same units the forecast was made in, and returns one score per curve, ``(n,)``:

* :func:`log_likelihood`: mean over the epochs of ``log q(y_t | y_1..y_c)``, the log density of the
  true (noisy) value under the predicted marginal. Higher is better. Densities are per unit of the
  values, so the figure depends on their scale: the paper's numbers are in the unit interval.
* :func:`squared_error`: mean over the epochs of ``(median_t - y_t)^2`` (MSE of the predictive median).
* :func:`interval_coverage`: fraction of the epochs whose true value lies in the central
  ``level`` credible interval (closed at both ends).

Averaging over curves is the caller's (:func:`mean_and_se`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lcpfn.errors import InputError
from lcpfn.forecast import Forecast

__all__ = ["CurveScores", "log_likelihood", "squared_error", "interval_coverage", "score", "mean_and_se"]


def _truth(fc: Forecast, truth) -> np.ndarray:
    """``truth`` as float64 ``(n, H)``; shape and finiteness are checked by the forecast."""
    y = np.asarray(truth, dtype=np.float64)
    h = len(fc.epochs)
    if y.shape not in ((fc.n_curves, h), (h,)) or (y.ndim == 1 and fc.n_curves != 1):
        raise InputError(
            f"truth must have shape ({fc.n_curves}, {h}) (curves x future epochs), but has {y.shape}"
        )
    if not np.all(np.isfinite(y)):
        raise InputError("truth must be finite, but contains NaN or infinite values")
    return y.reshape(fc.n_curves, h)


def _as_forecast_input(fc: Forecast, y: np.ndarray) -> np.ndarray:
    """The ``(n, H)`` values in the shape the forecast's own methods expect (``(H,)`` for a
    forecast made from one 1-D curve; ``Forecast`` keeps that flag privately, same package)."""
    return y[0] if fc._squeeze else y


def _two_d(a) -> np.ndarray:
    return np.atleast_2d(np.asarray(a, dtype=np.float64))


def log_likelihood(fc: Forecast, truth) -> np.ndarray:
    """Per-curve mean log predictive density of ``truth``: ``(n,)``."""
    y = _truth(fc, truth)
    lp = _two_d(fc.log_prob(_as_forecast_input(fc, y)))
    return lp.mean(axis=1)


def squared_error(fc: Forecast, truth) -> np.ndarray:
    """Per-curve mean squared error of the predictive median: ``(n,)``."""
    y = _truth(fc, truth)
    return ((_two_d(fc.median()) - y) ** 2).mean(axis=1)


def interval_coverage(fc: Forecast, truth, *, level: float = 0.9) -> np.ndarray:
    """Per-curve fraction of epochs inside the central ``level`` interval: ``(n,)``."""
    y = _truth(fc, truth)
    low, high = fc.interval(level)
    inside = (_two_d(low) <= y) & (y <= _two_d(high))
    return inside.mean(axis=1)


@dataclass(frozen=True)
class CurveScores:
    """The three scores of every curve, each ``(n,)``."""

    log_likelihood: np.ndarray
    squared_error: np.ndarray
    coverage: np.ndarray
    level: float


def score(fc: Forecast, truth, *, level: float = 0.9) -> CurveScores:
    """All three scores of ``fc`` against ``truth`` (see the module docstring)."""
    return CurveScores(
        log_likelihood=log_likelihood(fc, truth),
        squared_error=squared_error(fc, truth),
        coverage=interval_coverage(fc, truth, level=level),
        level=float(level),
    )


def mean_and_se(values) -> tuple[float, float]:
    """Mean and its standard error (sample std / sqrt(n)) of a 1-D array of per-curve scores.

    The standard error of a single value is ``nan``; an empty array raises :class:`InputError`.
    """
    a = np.asarray(values, dtype=np.float64).ravel()
    if a.size == 0:
        raise InputError("cannot average an empty set of scores")
    mean = float(a.mean())
    se = float(a.std(ddof=1) / math.sqrt(a.size)) if a.size > 1 else math.nan
    return mean, se
