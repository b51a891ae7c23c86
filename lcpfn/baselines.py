"""Naive forecasters with the same ``predict`` signature and :class:`~lcpfn.forecast.Forecast` type
as ``LCPFN.predict``: yardsticks a learned extrapolator has to beat.

Both work in the unit-interval space of :func:`lcpfn.normalization.unit_transform` (validation and
normalisation exactly as the PFN's) and predict an independent Gaussian at each future epoch:

* :class:`LastValuePredictor`: the last observed value persists.
* :class:`Pow3FitPredictor`: a least-squares fit of ``c - a t^(-alpha)`` to the observed prefix.
"""

from __future__ import annotations

import logging
import math
import warnings
from typing import Any

import numpy as np
import torch

from lcpfn.errors import InputError, require
from lcpfn.forecast import Forecast, Predictor
from lcpfn.validation import CurveBatch

__all__ = ["GaussianForecast", "LastValuePredictor", "Pow3FitPredictor"]

logger = logging.getLogger(__name__)

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
# Median absolute deviation -> standard deviation for Gaussian data.
_MAD_TO_STD = 1.4826


class GaussianForecast(Forecast):
    """An independent normal ``N(mean[i, h], std[i, h]^2)`` (model space) at every forecast epoch.

    Args:
        mean: ``(n, H)`` model-space means.
        std: ``(n, H)`` model-space standard deviations, all > 0.
        forecast_args: the keyword arguments of :class:`~lcpfn.forecast.Forecast` (``epochs``,
            ``observed``, ``transform``, ``direction``, ``squeeze``, ...).
    """

    def __init__(self, *, mean: np.ndarray, std: np.ndarray, **forecast_args: Any) -> None:
        super().__init__(**forecast_args)
        want = (self.n_curves, len(self.epochs))
        self.loc = np.asarray(mean, dtype=np.float64)
        self.scale = np.asarray(std, dtype=np.float64)
        if self.loc.shape != want or self.scale.shape != want:
            raise ValueError(f"mean and std must have shape {want}, got {self.loc.shape} and {self.scale.shape}")
        if not (np.all(np.isfinite(self.loc)) and np.all(np.isfinite(self.scale)) and np.all(self.scale > 0)):
            raise ValueError("mean must be finite and std finite and positive")

    def _params(self, h: int | None) -> tuple[np.ndarray, np.ndarray]:
        if h is None:
            return self.loc, self.scale
        return self.loc[:, h : h + 1], self.scale[:, h : h + 1]

    def _z_mean(self) -> np.ndarray:
        return self.loc.copy()

    def _z_quantile(self, p: float) -> np.ndarray:
        return self.loc + self.scale * _ndtri(p)

    def _z_cdf(self, z: np.ndarray, h: int | None) -> np.ndarray:
        loc, scale = self._params(h)
        return _ndtr((z - loc) / scale)

    def _z_log_prob(self, z: np.ndarray, h: int | None) -> np.ndarray:
        loc, scale = self._params(h)
        u = (z - loc) / scale
        return -0.5 * u**2 - np.log(scale) - _LOG_SQRT_2PI


def _ndtr(u: np.ndarray) -> np.ndarray:
    """Standard normal CDF (torch's, so the core needs no scipy)."""
    return torch.special.ndtr(torch.as_tensor(u, dtype=torch.float64)).numpy()


def _ndtri(p: float) -> float:
    return float(torch.special.ndtri(torch.tensor(p, dtype=torch.float64)))


def noise_std(z: np.ndarray, *, min_std: float) -> np.ndarray:
    """Robust per-curve estimate of the observation noise of ``z`` ``(n, T)``: ``(n,)``.

    The noise of ``y_t = f(t) + eps_t`` with a slowly varying ``f`` shows in the first differences
    ``d_t = y_{t+1} - y_t``, whose spread (about their median, which absorbs a steady trend) is
    ``sqrt(2)`` times the noise's. The spread is the median absolute deviation scaled to a standard
    deviation, so a few jumps do not inflate it. Fewer than 3 differences (``T < 4``) carry no
    usable estimate, and any estimate is floored at ``min_std``.
    """
    n, t = z.shape
    if t < 4:
        return np.full(n, min_std)
    d = np.diff(z, axis=1)
    mad = np.median(np.abs(d - np.median(d, axis=1, keepdims=True)), axis=1)
    return np.maximum(_MAD_TO_STD * mad / math.sqrt(2.0), min_std)


class _GaussianPredictor(Predictor):
    """Validation, normalisation and packaging shared by the Gaussian baselines."""

    native_length: int = 100

    def __init__(self, *, min_std: float) -> None:
        valid = isinstance(min_std, (int, float)) and not isinstance(min_std, bool)
        if not (valid and min_std > 0 and math.isfinite(min_std)):
            raise InputError(f"min_std must be a positive number, but got {min_std!r}")
        self.min_std = float(min_std)

    def _forecast(self, batch: CurveBatch) -> GaussianForecast:
        epochs = np.arange(batch.y.shape[1] + 1, batch.max_epochs + 1)
        mean, std = self._fit(batch.z, epochs)
        return GaussianForecast(
            mean=mean, std=std, epochs=epochs, observed=batch.y, transform=batch.transform,
            direction=batch.direction, squeeze=batch.squeeze, bounds=batch.bounds,
        )

    def _fit(self, z: np.ndarray, epochs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Model-space ``(mean, std)``, each ``(n, H)``, from observed ``z`` ``(n, T)``."""
        raise NotImplementedError


class LastValuePredictor(_GaussianPredictor):
    """The last observed value persists: ``N(z_T, s^2)`` at every future epoch.

    ``s`` is the robust noise estimate of :func:`noise_std` (first differences, MAD), floored at
    ``min_std`` (model units: the unit interval, where the reference prior's noise has median
    ``exp(-4) ~ 0.018``). It does not grow with the horizon: this baseline knows nothing about
    trends, on purpose.

    Args:
        min_std: floor of the predictive standard deviation, in model units (default 0.01).
    """

    def __init__(self, *, min_std: float = 0.01) -> None:
        super().__init__(min_std=min_std)

    def __repr__(self) -> str:
        return f"LastValuePredictor(min_std={self.min_std})"

    def _fit(self, z, epochs):
        h = len(epochs)
        mean = np.repeat(z[:, -1:], h, axis=1)
        std = np.repeat(noise_std(z, min_std=self.min_std)[:, None], h, axis=1)
        return mean, std


class Pow3FitPredictor(_GaussianPredictor):
    """Least-squares fit of ``pow3(t) = c - a t^(-alpha)`` to each observed prefix.

    The fit is :func:`scipy.optimize.curve_fit` (bounded trust-region, ``alpha`` in
    ``[1e-3, 20]``, started from a curve through the first and last observed values). The
    predictive at each future epoch is ``N(pow3(t), s^2)`` with ``s`` the residual standard
    deviation ``sqrt(RSS / (T - 3))``, floored at ``min_std`` (model units). A prefix of fewer
    than 5 points (``T - 3 < 2`` residual degrees of freedom), a fit that fails or produces
    non-finite values falls back to :class:`LastValuePredictor`'s forecast for that curve; which
    curves fell back is recorded in ``self.last_fallbacks`` (``(n,)`` bool, of the latest call)
    and logged at debug level.

    Needs scipy (installed with ``pip install 'lcpfn[mcmc]'``).

    Args:
        min_std: floor of the predictive standard deviation, in model units (default 0.01).
        max_nfev: function-evaluation budget of each fit.
    """

    min_points: int = 5

    def __init__(self, *, min_std: float = 0.01, max_nfev: int = 2000) -> None:
        super().__init__(min_std=min_std)
        if isinstance(max_nfev, bool) or not isinstance(max_nfev, (int, np.integer)) or max_nfev < 1:
            raise InputError(f"max_nfev must be at least 1 but got {max_nfev!r}")
        self.max_nfev = int(max_nfev)
        require("scipy.optimize", extra="mcmc", feature="Pow3FitPredictor")
        self.last_fallbacks: np.ndarray | None = None

    def __repr__(self) -> str:
        return f"Pow3FitPredictor(min_std={self.min_std}, max_nfev={self.max_nfev})"

    def _fit(self, z, epochs):
        n, t_obs = z.shape
        mean, std = LastValuePredictor(min_std=self.min_std)._fit(z, epochs)
        fallbacks = np.ones(n, dtype=bool)
        if t_obs >= self.min_points:
            t = np.arange(1, t_obs + 1, dtype=np.float64)
            for i in range(n):
                fit = self._fit_one(t, z[i], epochs.astype(np.float64))
                if fit is not None:
                    mean[i], std[i] = fit
                    fallbacks[i] = False
        if fallbacks.any():
            logger.debug("Pow3FitPredictor fell back to the last value for curves %s", np.flatnonzero(fallbacks))
        self.last_fallbacks = fallbacks
        return mean, std

    def _fit_one(self, t: np.ndarray, z: np.ndarray, future: np.ndarray) -> tuple[np.ndarray, float] | None:
        """``(mean (H,), std)`` of one curve, or ``None`` if the fit failed."""
        optimize = require("scipy.optimize", extra="mcmc", feature="Pow3FitPredictor")
        # c - a t^-alpha through (1, z_1) and, for alpha = 0.5, (T, z_T)
        alpha0 = 0.5
        decay = t[-1] ** -alpha0
        a0 = (z[-1] - z[0]) / (1.0 - decay) if decay < 1 else 0.0
        c0 = z[0] + a0
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")  # OptimizeWarning: covariance not estimated; unused
                popt, _ = optimize.curve_fit(
                    _pow3,
                    t,
                    z,
                    p0=(c0, a0, alpha0),
                    bounds=((-np.inf, -np.inf, 1e-3), (np.inf, np.inf, 20.0)),
                    max_nfev=self.max_nfev,
                )
        except (RuntimeError, ValueError, FloatingPointError) as exc:
            logger.debug("pow3 fit failed: %s", exc)
            return None
        with np.errstate(all="ignore"):
            resid = z - _pow3(t, *popt)
            mean = _pow3(future, *popt)
        rss = float(np.sum(resid**2))
        if not (np.all(np.isfinite(mean)) and math.isfinite(rss)):
            return None
        std = max(math.sqrt(rss / (len(t) - 3)), self.min_std)
        return mean, std


def _pow3(t: np.ndarray, c: float, a: float, alpha: float) -> np.ndarray:
    return c - a * t ** (-alpha)
