"""Forecast: the posterior predictive of every future epoch, in the caller's units.

A forecaster (the PFN, the MCMC baseline) works in its own *model space* ``z``; the caller's
values ``y`` map into it by a per-curve affine transform ``z = scale * y + shift`` (``scale < 0``
for minimised metrics). :class:`Forecast` does that bookkeeping once — flipping quantiles, adding
the Jacobian ``log|scale|`` to densities — so a subclass only implements the distribution in
model space. Arrays are float64 numpy, batch-first: ``(n, H)`` for ``n`` curves and ``H`` future
epochs; a forecast made from a 1-D curve returns ``(H,)`` arrays and plain floats.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from lcpfn.errors import InputError


@dataclass(frozen=True)
class ValueTransform:
    """Per-curve affine map ``z = scale * y + shift`` from the caller's units into model space.

    ``scale`` and ``shift`` have shape ``(n,)``; ``scale`` is never zero.
    """

    scale: np.ndarray
    shift: np.ndarray

    @classmethod
    def identity(cls, n: int) -> "ValueTransform":
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


class Forecast(ABC):
    """Posterior predictive marginals of epochs ``epochs[0] .. epochs[-1]`` for ``n`` curves.

    Attributes:
        epochs: ``(H,)`` int array, the forecast epochs ``T+1 .. max_epochs``.
        observed: ``(n, T)`` the observed values, in caller units.
        direction: ``"maximize"`` or ``"minimize"``.
    """

    def __init__(
        self,
        *,
        epochs: np.ndarray,
        observed: np.ndarray,
        transform: ValueTransform,
        direction: str,
        squeeze: bool,
    ) -> None:
        self.epochs = np.asarray(epochs, dtype=np.int64)
        self.observed = np.asarray(observed, dtype=np.float64)
        self.transform = transform
        self.direction = direction
        self._squeeze = squeeze

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
        up = self.transform.to_caller(self._z_quantile(q))
        if np.all(self.transform.scale > 0):
            out = up
        else:  # a decreasing map turns the q-quantile into the (1 - q)-quantile
            down = self.transform.to_caller(self._z_quantile(1.0 - q))
            out = np.where(self.transform.scale[:, None] > 0, up, down)
        return self._out(out)

    def median(self) -> np.ndarray:
        """The predictive median of every future epoch, shape as :meth:`quantile`."""
        return self.quantile(0.5)

    def interval(self, level: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
        """Central ``level`` credible interval ``(low, high)`` of every future epoch."""
        level = _check_probability(level, "level")
        return self.quantile((1 - level) / 2), self.quantile((1 + level) / 2)

    def mean(self) -> np.ndarray:
        """The predictive mean of every future epoch, shape as :meth:`quantile`."""
        return self._out(self.transform.to_caller(self._z_mean()))

    def log_prob(self, values) -> np.ndarray:
        """Log density of ``values`` (one per future epoch) in the caller's units.

        ``values`` has shape ``(n, H)`` (``(H,)`` for a forecast of one curve); the result too.
        """
        y = self._check_values(values, "values")
        z = self.transform.to_model(y)
        return self._out(self._z_log_prob(z, None) + self.transform.log_abs_scale[:, None])

    def cdf(self, values) -> np.ndarray:
        """``P(Y_t <= values_t)`` for every future epoch, shapes as :meth:`log_prob`."""
        y = self._check_values(values, "values")
        p = self._z_cdf(self.transform.to_model(y), None)
        p = np.where(self.transform.scale[:, None] > 0, p, 1.0 - p)
        return self._out(np.clip(p, 0.0, 1.0))

    def log_prob_at(self, grid, *, epoch: int | None = None) -> np.ndarray:
        """Log density at one epoch (default: the last) over a grid of values.

        ``grid`` is 1-D ``(G,)``; returns ``(n, G)``, or ``(G,)`` for one curve.
        """
        h = self._epoch_index(epoch)
        g = _finite_1d(grid, "grid")
        z = self.transform.to_model(np.broadcast_to(g, (self.n_curves, g.size)).copy())
        return self._out(self._z_log_prob(z, h) + self.transform.log_abs_scale[:, None])

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
        p = self._z_cdf(z, h)[:, 0]
        # P(Y <= thr): for a decreasing map this is P(Z >= z(thr))
        p = np.where(self.transform.scale > 0, p, 1.0 - p)
        return np.clip(p, 0.0, 1.0)

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
        if not np.all(np.isfinite(y)):
            raise InputError(f"{name} must be finite, but contains {_first_bad(y)}")
        return y.reshape(self.n_curves, len(self.epochs))

    def _out(self, a: np.ndarray) -> np.ndarray:
        return a[0] if self._squeeze else a

    def _scalar_or_array(self, a: np.ndarray):
        return float(a[0]) if self._squeeze else a

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(n_curves={self.n_curves}, observed_epochs={self.observed.shape[1]}, "
            f"epochs={self.epochs[0]}..{self.epochs[-1]}, direction={self.direction!r})"
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
