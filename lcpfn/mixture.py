"""A forecast that is a weighted mixture of normals per future epoch: the MCMC baseline's output.

Needs SciPy (``pip install 'lcpfn[mcmc]'``) for its special functions, imported on first use.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from lcpfn.errors import require
from lcpfn.forecast import Forecast

if TYPE_CHECKING:
    from lcpfn.mcmc import MCMCDiagnostics

__all__ = ["MixtureForecast"]


class MixtureForecast(Forecast):
    """Predictive of each future epoch as a weighted mixture of normals, one per posterior draw.

    At forecast epoch ``h`` curve ``i`` has density ``sum_s w[i, s] N(z; mu[i, s, h], sigma[i, s]^2)``
    in model space. ``log_prob`` and ``cdf`` are exact for the mixture (log-sum-exp over draws),
    ``mean`` too; quantiles solve the mixture CDF by vectorised bisection to ``1e-10`` (model units).

    Args:
        mu: ``(n, S, H)`` model-space noiseless curve of every draw at every forecast epoch.
        sigma: ``(n, S)`` noise standard deviation of every draw (> 0).
        weights: ``(n, S)`` non-negative draw weights; normalised per curve here. ``None``: equal.
        diagnostics: one :class:`MCMCDiagnostics` per curve, or ``None`` (hand-built mixtures).
        forecast_args: the keyword arguments of :class:`~lcpfn.forecast.Forecast` (``epochs``,
            ``observed``, ``transform``, ``direction``, ``squeeze``, ...).
    """

    def __init__(
        self,
        *,
        mu: np.ndarray,
        sigma: np.ndarray,
        weights: np.ndarray | None = None,
        diagnostics: list[MCMCDiagnostics] | None = None,
        **forecast_args: Any,
    ) -> None:
        super().__init__(**forecast_args)
        mu = np.asarray(mu, dtype=np.float64)
        sigma = np.asarray(sigma, dtype=np.float64)
        n = self.n_curves
        if mu.ndim != 3 or mu.shape[0] != n or mu.shape[2] != len(self.epochs):
            raise ValueError(f"mu must have shape (n={n}, S, H={len(self.epochs)}), got {mu.shape}")
        if sigma.shape != mu.shape[:2] or not np.all(sigma > 0):
            raise ValueError(f"sigma must be positive with shape {mu.shape[:2]}, got {sigma.shape}")
        w = np.ones(mu.shape[:2]) if weights is None else np.asarray(weights, dtype=np.float64)
        if w.shape != mu.shape[:2] or np.any(w < 0) or not np.all(w.sum(axis=1) > 0):
            raise ValueError(f"weights must be non-negative with shape {mu.shape[:2]} and a positive sum per curve")
        self.mu = mu
        self.sigma = sigma
        self.weights = w / w.sum(axis=1, keepdims=True)
        self.diagnostics = diagnostics

    @property
    def n_draws(self) -> int:
        return self.mu.shape[1]

    def _z_mean(self) -> np.ndarray:
        return np.einsum("ns,nsh->nh", self.weights, self.mu)

    def _components(self, z: np.ndarray, h: int | None) -> tuple[np.ndarray, np.ndarray]:
        """Standardised values ``(z - mu) / sigma`` of shape ``(n, S, K)`` and ``sigma`` ``(n, S, 1)``."""
        sig = self.sigma[:, :, None]
        mu = self.mu if h is None else self.mu[:, :, h : h + 1]
        return (z[:, None, :] - mu) / sig, sig

    def _z_log_prob(self, z: np.ndarray, h: int | None) -> np.ndarray:
        special = _scipy_special()
        u, sig = self._components(z, h)
        log_pdf = -0.5 * u**2 - np.log(sig) - 0.5 * math.log(2 * math.pi)
        return special.logsumexp(log_pdf, axis=1, b=self.weights[:, :, None])

    def _z_cdf(self, z: np.ndarray, h: int | None) -> np.ndarray:
        special = _scipy_special()
        u, _ = self._components(z, h)
        return np.einsum("ns,nsk->nk", self.weights, special.ndtr(u))

    def _z_quantile(self, p: float) -> np.ndarray:
        special = _scipy_special()
        # The mixture's p-quantile lies between the smallest and the largest component quantile.
        comp_q = self.mu + self.sigma[:, :, None] * special.ndtri(p)  # (n, S, H)
        live = self.weights[:, :, None] > 0
        lo = np.where(live, comp_q, np.inf).min(axis=1)
        hi = np.where(live, comp_q, -np.inf).max(axis=1)
        for _ in range(200):
            if np.all(hi - lo <= 1e-10):
                break
            mid = 0.5 * (lo + hi)
            below = self._z_cdf(mid, None) < p
            lo = np.where(below, mid, lo)
            hi = np.where(below, hi, mid)
        return 0.5 * (lo + hi)


def _scipy_special():
    return require("scipy.special", extra="mcmc", feature="MixtureForecast")
