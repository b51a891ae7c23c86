"""MCMC baseline: the reference prior's exact posterior predictive, sampled with NUTS in PyMC.

:class:`MCMCPredictor` fits the model the reference PFN was trained on (the "Domhan-3" prior of
Adriaensen et al., 2023; ``lcpfn.priors.ReferencePrior``) to each observed curve and returns the
same :class:`~lcpfn.forecast.Forecast` interface as ``LCPFN.predict``, so the two can be swapped.

The model, in the unit-interval space of :func:`lcpfn.validation.unit_transform`::

    mu(t)   = w1 pow3(t) + w2 ilog2(t) + w3 Janoschek(t),      w_k ~ U(0, 1)
    pow3      c - a t^(-alpha)            c ~ U(0, 1.25), a ~ U(-0.6, 0.6), alpha ~ LogNormal(0, 2)
    ilog2     c - a / log(t + 1)          c ~ U(0, 1),    a ~ U(-0.5, 0.5)
    Janoschek alpha - (alpha - beta) exp(-kappa t^delta)
              alpha ~ U(0, 1), beta ~ U(0, 2), kappa ~ LogNormal(-2, 1), delta ~ LogNormal(0, 0.5)
    y_t ~ N(mu(t), sigma^2) i.i.d.,   log sigma ~ N(-4, 1)

    constraints (the prior's rejection step) on the noiseless curve over t = 1..100:
    mu(100) > mu(1)  and  0 <= mu(t) <= 1 for every t.

**The constraints.** A hard indicator makes the log density jump to ``-inf`` and NUTS diverges on
it. NUTS therefore samples a smoothed target in which each constraint ``g(theta) >= 0`` contributes
``log sigmoid(g / tau)`` (``tau = constraint_softness``; ``g`` is ``mu(100) - mu(1)``,
``min_t mu(t)`` and ``1 - max_t mu(t)``), and the draws are then corrected *exactly* by importance
weighting: a draw that breaks a hard constraint gets weight 0, any other draw weight
``1 / prod sigmoid(g / tau)``, which lies in ``[1, 8]`` because every ``g >= 0`` there. The weighted
draws target the posterior under the hard constraints; ``tau`` only trades sampler geometry
against the fraction of draws that is dropped (both reported in :class:`MCMCDiagnostics`).

**Horizons beyond 100 epochs** are read as ``LCPFN.predict`` reads them: epoch ``t`` is model time
``t * 100 / max_epochs``, so the whole run is one curve of the prior over model times 1..100 and the
constraints hold over the whole run. The parametric curves are defined for every real ``t``, so
every observed epoch is used (no subsampling is needed, unlike the PFN's context). Up to 100 epochs
model time is the epoch, and the constraints still cover epochs 1..100, the prior's whole length.

The PyMC model and the NUTS step are built and compiled once per predictor: the observed epochs
and values enter through resizable ``pm.Data`` containers, so fitting another curve (of any
length) only swaps data, restores the sampler's pristine tuning state and samples.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import warnings
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from lcpfn.errors import InputError, require
from lcpfn.forecast import Forecast, ValueTransform
from lcpfn.validation import BoundsArg, prepare_unit_curves

__all__ = ["MCMCPredictor", "MixtureForecast", "MCMCDiagnostics"]

logger = logging.getLogger(__name__)

NATIVE_LENGTH = 100
"""Length of the reference prior's curves: the constraints hold on epochs 1..100."""

# When a fit is reported as bad (a warning is logged; the numbers are always in the diagnostics).
MAX_DIVERGENCE_FRACTION = 0.01
MAX_R_HAT = 1.05
MIN_KEPT_FRACTION = 0.5
# Starting points: optima this far (log density) below the best one are not used.
INIT_LOGP_GAP = 2.0

# The free parameters, their priors and how the curve parameters derive from them.
# ("uniform", low, high) or ("normal", mean, std); a "log_" name is exponentiated.
_PRIORS: dict[str, tuple[str, float, float]] = {
    "w_pow3": ("uniform", 0.0, 1.0),
    "w_ilog2": ("uniform", 0.0, 1.0),
    "w_janoschek": ("uniform", 0.0, 1.0),
    "pow3_c": ("uniform", 0.0, 1.25),
    "pow3_a": ("uniform", -0.6, 0.6),
    "pow3_log_alpha": ("normal", 0.0, 2.0),
    "ilog2_c": ("uniform", 0.0, 1.0),
    "ilog2_a": ("uniform", -0.5, 0.5),
    "janoschek_alpha": ("uniform", 0.0, 1.0),
    "janoschek_beta": ("uniform", 0.0, 2.0),
    "janoschek_log_kappa": ("normal", -2.0, 1.0),
    "janoschek_log_delta": ("normal", 0.0, 0.5),
    "log_sigma": ("normal", -4.0, 1.0),
}
_NATIVE_TIMES = np.arange(1, NATIVE_LENGTH + 1, dtype=np.float64)


def noiseless_curve(xp: Any, p: dict[str, Any], t: Any) -> Any:
    """``mu(t)`` of the model for parameters ``p`` (names of ``_PRIORS``).

    ``xp`` is ``numpy`` or ``pytensor.tensor``, so the sampler and the forecast share one formula.
    With numpy, parameters of shape ``(S, 1)`` and ``t`` of shape ``(L,)`` give ``(S, L)``.
    """
    log_t = xp.log(t)
    pow3 = p["pow3_c"] - p["pow3_a"] * xp.exp(-xp.exp(p["pow3_log_alpha"]) * log_t)
    ilog2 = p["ilog2_c"] - p["ilog2_a"] / xp.log(t + 1.0)
    ja, jb = p["janoschek_alpha"], p["janoschek_beta"]
    kappa_t_delta = xp.exp(p["janoschek_log_kappa"] + xp.exp(p["janoschek_log_delta"]) * log_t)
    janoschek = ja - (ja - jb) * xp.exp(-kappa_t_delta)
    return p["w_pow3"] * pow3 + p["w_ilog2"] * ilog2 + p["w_janoschek"] * janoschek


def _constraint_margins(xp: Any, mu_native: Any, axis: int) -> tuple[Any, Any, Any]:
    """The three margins ``g >= 0`` of the constraints, from ``mu`` over epochs 1..100."""
    first = mu_native[..., 0]
    last = mu_native[..., NATIVE_LENGTH - 1]
    return last - first, xp.min(mu_native, axis=axis), 1.0 - xp.max(mu_native, axis=axis)


def _log_sigmoid(x: np.ndarray) -> np.ndarray:
    return -np.logaddexp(0.0, -x)


def constraint_weights(mu_native: np.ndarray, *, softness: float) -> np.ndarray:
    """Importance weights ``(S,)`` that turn draws of the smoothed target into the hard-constrained one.

    ``mu_native`` ``(S, 100)`` is each draw's noiseless curve at model times 1..100. A draw breaking
    a constraint (or not finite) gets 0; any other ``1 / prod_k sigmoid(g_k / softness)``, in ``[1, 8]``.
    """
    with np.errstate(all="ignore"):
        rise, low, high = _constraint_margins(np, mu_native, axis=1)
        inside = np.all(np.isfinite(mu_native), axis=1) & (rise > 0) & (low >= 0) & (high >= 0)
        log_soft = sum(_log_sigmoid(np.where(inside, g, 0.0) / softness) for g in (rise, low, high))
    return np.where(inside, np.exp(-log_soft), 0.0)


# --------------------------------------------------------------------------------------------------
# The forecast
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MCMCDiagnostics:
    """How one curve's fit went. Read these before trusting a forecast.

    Attributes:
        chains, draws: as sampled (``chains * draws`` posterior draws in all).
        divergences: NUTS transitions that diverged after tuning; ``divergence_fraction`` of all.
        r_hat_max: largest rank-normalised split R-hat (arviz) over the model's parameters;
            weights and the parameters of a component with weight near 0 are poorly identified,
            so this is often large even when the forecast has converged.
        r_hat_forecast: split R-hat of the noiseless forecast at the last forecast epoch.
        ess_forecast: bulk effective sample size of that same quantity.
        kept_fraction: fraction of draws satisfying the hard constraints (the others get weight 0).
        importance_ess: effective number of draws after the constraint reweighting.
        chain_mean_logp: mean log density (of the sampled, smoothed target) of each chain; a
            chain far below the others is stuck in a minor mode.
        seconds: wall-clock time of the fit (sampling and post-processing).
        ok: no threshold (module constants ``MAX_DIVERGENCE_FRACTION``, ``MAX_R_HAT``,
            ``MIN_KEPT_FRACTION``) was crossed.
    """

    chains: int
    draws: int
    divergences: int
    divergence_fraction: float
    r_hat_max: float
    r_hat_forecast: float
    ess_forecast: float
    kept_fraction: float
    importance_ess: float
    chain_mean_logp: tuple[float, ...]
    seconds: float
    ok: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


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
        The remaining keyword arguments are those of :class:`~lcpfn.forecast.Forecast`.
    """

    def __init__(
        self,
        *,
        mu: np.ndarray,
        sigma: np.ndarray,
        weights: np.ndarray | None = None,
        epochs: np.ndarray,
        observed: np.ndarray,
        transform: ValueTransform,
        direction: str,
        squeeze: bool,
        diagnostics: list[MCMCDiagnostics] | None = None,
    ) -> None:
        super().__init__(
            epochs=epochs, observed=observed, transform=transform, direction=direction, squeeze=squeeze
        )
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


# --------------------------------------------------------------------------------------------------
# The predictor
# --------------------------------------------------------------------------------------------------


@dataclass
class _Compiled:
    """The PyMC model and its NUTS step, compiled once; the step's state before any tuning."""

    model: Any
    step: Any
    pristine_state: Any
    logp_dlogp: Any


class MCMCPredictor:
    """Posterior-predictive forecasts under the reference prior by NUTS (PyMC), one fit per curve.

    Args:
        chains: independent NUTS chains per curve (R-hat needs at least 2 to detect
            non-convergence between chains; with 1 it compares the chain's two halves).
        draws: kept draws per chain.
        tune: tuning (warm-up) iterations per chain, discarded.
        seed: makes forecasts reproducible; curve ``i`` of a call is fitted with a seed derived
            from ``(seed, i)``. ``None``: fresh randomness.
        target_accept: NUTS target acceptance probability (higher: smaller steps, fewer divergences).
        cores: processes to run chains in (``1``: sequentially in this process).
        progressbar: show PyMC's progress bar.
        constraint_softness: ``tau`` of the smoothed constraints (model units); see the module
            docstring. The correction to the hard constraints is exact for every ``tau``.
        init_candidates: prior draws screened for starting points, the best of which are
            polished by L-BFGS (see ``_initial_points``).
        max_treedepth: NUTS maximum tree depth. The posterior is a thin curved ridge (the observed
            epochs pin the curve), so untruncated trajectories run to 1000+ leapfrog steps;
            depth 8 (at most 256 steps) buys more, shorter transitions for the same time.
        mass_matrix: ``"full"``: NUTS adapts a dense mass matrix (the parameters are strongly
            correlated: weights multiply amplitudes); ``"diag"``: PyMC's default diagonal one.
        backend: PyTensor backend of the log density and its gradient. ``"numba"`` (PyTensor's
            numba mode) evaluates it several times faster than ``"c"`` on this model.
    """

    native_length: int = NATIVE_LENGTH

    def __init__(
        self,
        *,
        chains: int = 2,
        draws: int = 500,
        tune: int = 500,
        seed: int | None = None,
        target_accept: float = 0.95,
        cores: int = 1,
        progressbar: bool = False,
        constraint_softness: float = 0.01,
        init_candidates: int = 4000,
        max_treedepth: int = 8,
        mass_matrix: Literal["full", "diag"] = "full",
        backend: Literal["numba", "c"] = "numba",
    ) -> None:
        for name, value, low in (
            ("chains", chains, 1),
            ("draws", draws, 1),
            ("tune", tune, 0),
            ("cores", cores, 1),
            ("init_candidates", init_candidates, 1),
            ("max_treedepth", max_treedepth, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise InputError(f"{name} must be an integer, but got {value!r}")
            if value < low:
                raise InputError(f"{name} must be at least {low} but got {value}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise InputError(f"seed must be a non-negative integer or None, but got {seed!r}")
        if not (isinstance(target_accept, (int, float)) and 0.0 < target_accept < 1.0):
            raise InputError(f"target_accept must be in (0, 1), but got {target_accept!r}")
        if not (isinstance(constraint_softness, (int, float)) and constraint_softness > 0):
            raise InputError(f"constraint_softness must be positive, but got {constraint_softness!r}")
        if mass_matrix not in ("full", "diag"):
            raise InputError(f"mass_matrix must be 'full' or 'diag', but got {mass_matrix!r}")
        if backend not in ("numba", "c"):
            raise InputError(f"backend must be 'numba' or 'c', but got {backend!r}")
        self.mass_matrix = mass_matrix
        self.backend = backend
        self.chains = int(chains)
        self.draws = int(draws)
        self.tune = int(tune)
        self.seed = None if seed is None else int(seed)
        self.target_accept = float(target_accept)
        self.cores = int(cores)
        self.progressbar = bool(progressbar)
        self.constraint_softness = float(constraint_softness)
        self.init_candidates = int(init_candidates)
        self.max_treedepth = int(max_treedepth)
        _require_pymc()  # fail here, with the install hint, rather than at the first predict
        self._compiled: _Compiled | None = None

    def __repr__(self) -> str:
        return (
            f"MCMCPredictor(chains={self.chains}, draws={self.draws}, tune={self.tune}, seed={self.seed}, "
            f"target_accept={self.target_accept}, max_treedepth={self.max_treedepth}, cores={self.cores}, "
            f"constraint_softness={self.constraint_softness}, init_candidates={self.init_candidates}, "
            f"mass_matrix={self.mass_matrix!r}, backend={self.backend!r})"
        )

    def predict(
        self,
        curves,
        *,
        max_epochs: int,
        direction: Literal["maximize", "minimize"] = "maximize",
        bounds: BoundsArg = None,
    ) -> MixtureForecast:
        """Forecast epochs ``T+1 .. max_epochs`` of each curve (validation as ``LCPFN.predict``).

        ``curves`` is 1-D ``(T,)`` or 2-D ``(n, T)``, observed at epochs ``1..T``. Each curve is fitted
        separately (``n`` fits); per-curve diagnostics are in ``forecast.diagnostics`` and a warning
        is logged for every fit that crossed a threshold.
        """
        arr, squeeze, direction, transform = prepare_unit_curves(
            curves, max_epochs=max_epochs, direction=direction, bounds=bounds
        )
        z = transform.to_model(arr)  # (n, T)
        n, t_obs = z.shape
        epochs = np.arange(t_obs + 1, int(max_epochs) + 1)
        seeds = self._curve_seeds(n)
        mus, sigmas, weights, diags = [], [], [], []
        for i in range(n):
            mu, sigma, w, diag = self._fit_one(z[i], epochs, int(max_epochs), seeds[i])
            if not diag.ok:
                logger.warning("MCMC fit of curve %d looks unreliable: %s", i, _describe(diag))
            mus.append(mu)
            sigmas.append(sigma)
            weights.append(w)
            diags.append(diag)
        return MixtureForecast(
            mu=np.stack(mus),
            sigma=np.stack(sigmas),
            weights=np.stack(weights),
            epochs=epochs,
            observed=arr,
            transform=transform,
            direction=direction,
            squeeze=squeeze,
            diagnostics=diags,
        )

    # --- one curve ---------------------------------------------------------------------------------
    def _curve_seeds(self, n: int) -> list[int | None]:
        if self.seed is None:
            return [None] * n
        return [int(np.random.SeedSequence([self.seed, i]).generate_state(1)[0]) for i in range(n)]

    def _fit_one(
        self, z: np.ndarray, epochs: np.ndarray, max_epochs: int, seed: int | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, MCMCDiagnostics]:
        """Sample the posterior of one model-space curve ``z`` ``(T,)``.

        Returns ``mu`` ``(S, H)`` at ``epochs``, ``sigma`` ``(S,)``, weights ``(S,)`` and diagnostics.
        """
        pm = _require_pymc()
        started = time.perf_counter()
        t_obs = z.shape[0]
        time_scale = min(1.0, NATIVE_LENGTH / max_epochs)  # model time per epoch, as LCPFN.predict
        compiled = self._compile()
        times = np.arange(1, t_obs + 1) * time_scale
        rng = np.random.default_rng(seed)
        with compiled.model:
            pm.set_data({"obs_time": times, "obs_value": z})
        initvals = self._initial_points(z, times, rng, compiled)
        compiled.step.sampling_state = compiled.pristine_state  # forget the last curve's tuning
        with compiled.model, _no_blas_warning():
            idata = pm.sample(
                draws=self.draws,
                tune=self.tune,
                chains=self.chains,
                cores=self.cores,
                step=compiled.step,
                initvals=initvals,
                random_seed=rng,
                progressbar=self.progressbar,
                quiet=not self.progressbar,
                compute_convergence_checks=False,
            )
        post = idata.posterior
        params = {name: np.asarray(post[name].values, dtype=np.float64) for name in _PRIORS}  # (C, D)
        flat = {name: v.reshape(-1, 1) for name, v in params.items()}  # (S, 1)
        with np.errstate(all="ignore"):
            mu_native = noiseless_curve(np, flat, _NATIVE_TIMES)  # (S, 100)
            mu = noiseless_curve(np, flat, epochs * time_scale)  # (S, H)
        sigma = np.exp(flat["log_sigma"][:, 0])
        w = constraint_weights(mu_native, softness=self.constraint_softness)
        w = np.where(np.all(np.isfinite(mu), axis=1), w, 0.0)
        kept = float(np.mean(w > 0))
        if kept == 0.0:  # only if the sampler is lost; keep going, loudly
            logger.warning("no MCMC draw satisfies the prior's constraints; weighting all finite draws equally")
            w = np.all(np.isfinite(mu), axis=1).astype(np.float64)
        # convergence of the sampled chains, before the reweighting
        forecast_last = np.where(np.isfinite(mu[:, -1]), mu[:, -1], np.nan).reshape(self.chains, self.draws)
        mu = np.where(w[:, None] > 0, mu, 0.0)  # weight-0 draws may hold inf/nan

        diverging = np.asarray(idata.sample_stats["diverging"].values, dtype=bool)
        r_hat_max, r_hat_fc, ess_fc = _convergence(params, forecast_last)
        n_div = int(diverging.sum())
        div_frac = n_div / diverging.size
        imp_ess = float(w.sum() ** 2 / max(float((w**2).sum()), 1e-300))
        ok = (
            div_frac <= MAX_DIVERGENCE_FRACTION
            and kept >= MIN_KEPT_FRACTION
            and not (r_hat_fc > MAX_R_HAT)  # nan (too few draws to tell) does not fail
        )
        diag = MCMCDiagnostics(
            chains=self.chains,
            draws=self.draws,
            divergences=n_div,
            divergence_fraction=div_frac,
            r_hat_max=r_hat_max,
            r_hat_forecast=r_hat_fc,
            ess_forecast=ess_fc,
            kept_fraction=kept,
            importance_ess=imp_ess,
            chain_mean_logp=tuple(float(v) for v in idata.sample_stats["lp"].values.mean(axis=1)),
            seconds=time.perf_counter() - started,
            ok=ok,
        )
        return mu, sigma, w, diag

    def _initial_points(
        self, z: np.ndarray, times: np.ndarray, rng: np.random.Generator, compiled: _Compiled
    ) -> list[dict[str, float]]:
        """One start per chain, near the posterior's dominant mode.

        ``z`` ``(T,)`` observed at model times ``times`` ``(T,)``. The ``init_candidates`` prior
        draws are screened by profile log posterior (noise at its maximum-likelihood value);
        the best ``max(8, 4 * chains)`` are each polished by L-BFGS on the sampled (smoothed)
        log posterior. Chains start at the best optima, skipping optima more than
        ``INIT_LOGP_GAP`` below the best one (a chain started there tends to stay in a mode of
        negligible mass), so chains share an optimum when fewer distinct good ones exist.
        """
        optimize = require("scipy.optimize", extra="mcmc", feature="MCMCPredictor")
        cand = _sample_prior(self.init_candidates, rng)
        p = {k: v[:, None] for k, v in cand.items()}
        with np.errstate(all="ignore"):
            resid = noiseless_curve(np, p, times) - z  # (N, T)
            log_sigma = np.clip(0.5 * np.log(np.mean(resid**2, axis=1) + 1e-12), -9.0, 1.0)
            loglik = -0.5 * np.sum(resid**2, axis=1) * np.exp(-2 * log_sigma) - z.shape[0] * log_sigma
            margins = _constraint_margins(np, noiseless_curve(np, p, _NATIVE_TIMES), axis=1)
            soft = sum(_log_sigmoid(g / self.constraint_softness) for g in margins)
            score = loglik - 0.5 * (log_sigma + 4.0) ** 2 + soft
        score = np.where(np.isfinite(score), score, -np.inf)
        cand["log_sigma"] = log_sigma
        logp = compiled.logp_dlogp

        def neg(u: np.ndarray) -> tuple[float, np.ndarray]:
            value, grad = logp(u)
            if not np.isfinite(value):
                return 1e300, np.zeros_like(u)
            return -float(value), -np.asarray(grad, dtype=np.float64)

        optima = []
        for j in np.argsort(-score)[: max(8, 4 * self.chains)]:
            u0 = _to_unconstrained({name: cand[name][j] for name in _PRIORS})
            with np.errstate(all="ignore"):
                res = optimize.minimize(neg, u0, jac=True, method="L-BFGS-B", options={"maxiter": 300})
            if np.isfinite(res.fun) and res.fun < 1e299:
                optima.append((float(res.fun), res.x))
        if not optima:  # the screen's best draw, unpolished
            j = int(np.argmax(score))
            return [{name: float(cand[name][j]) for name in _PRIORS}] * self.chains
        optima.sort(key=lambda o: o[0])
        good = [u for value, u in optima if value <= optima[0][0] + INIT_LOGP_GAP]
        return [_from_unconstrained(good[k % len(good)]) for k in range(self.chains)]

    # --- the model, compiled once --------------------------------------------------------------------
    def _compile(self) -> _Compiled:
        if self._compiled is not None:
            return self._compiled
        pm = _require_pymc()
        import pytensor.tensor as pt
        from pymc.step_methods.hmc import quadpotential

        started = time.perf_counter()
        with pm.Model() as model, _no_blas_warning():
            # observed epochs (model time) and values; resizable, so any T reuses this graph
            obs_time = pm.Data("obs_time", np.arange(1.0, 3.0))
            obs_value = pm.Data("obs_value", np.zeros(2))
            p = {}
            for name, (kind, a, b) in _PRIORS.items():
                p[name] = pm.Uniform(name, a, b) if kind == "uniform" else pm.Normal(name, a, b)
            resid = (obs_value - noiseless_curve(pt, p, obs_time)) * pt.exp(-p["log_sigma"])
            log_norm = -0.5 * resid**2 - p["log_sigma"] - 0.5 * math.log(2 * math.pi)
            pm.Potential("log_likelihood", pt.sum(log_norm))
            margins = _constraint_margins(pt, noiseless_curve(pt, p, _NATIVE_TIMES), axis=0)
            tau = self.constraint_softness
            pm.Potential("constraints", sum(-pt.softplus(-g / tau) for g in margins))
            n_free = len(_PRIORS)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*experimental feature")
                potential = (
                    quadpotential.QuadPotentialFullAdapt(n_free, np.zeros(n_free))
                    if self.mass_matrix == "full"
                    else quadpotential.QuadPotentialDiagAdapt(n_free, np.zeros(n_free), np.ones(n_free), 10)
                )
            compile_kwargs = {"mode": "NUMBA"} if self.backend == "numba" else {}
            step = pm.NUTS(
                target_accept=self.target_accept,
                max_treedepth=self.max_treedepth,
                potential=potential,
                compile_kwargs=compile_kwargs,
            )
        # the same log density and gradient, on the raveled unconstrained vector (order: _PRIORS),
        # for polishing starting points
        logp_dlogp = model.logp_dlogp_function(ravel_inputs=True, **compile_kwargs)
        logp_dlogp.set_extra_values({})
        assert [v.name for v in step.vars] == [_value_name(n) for n in _PRIORS]
        self._compiled = _Compiled(
            model=model, step=step, pristine_state=step.sampling_state, logp_dlogp=logp_dlogp
        )
        logger.info("compiled the MCMC model (%s backend) in %.1f s", self.backend, time.perf_counter() - started)
        return self._compiled


def _sample_prior(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``n`` draws of every free parameter from its prior (constraints not applied)."""
    out = {}
    for name, (kind, a, b) in _PRIORS.items():
        out[name] = rng.uniform(a, b, size=n) if kind == "uniform" else rng.normal(a, b, size=n)
    return out


def _value_name(name: str) -> str:
    """PyMC's name of a parameter's unconstrained value variable."""
    return f"{name}_interval__" if _PRIORS[name][0] == "uniform" else name


def _to_unconstrained(point: dict[str, float]) -> np.ndarray:
    """Parameter values -> PyMC's unconstrained vector (logit-type interval transform), ``(13,)``."""
    out = []
    for name, (kind, a, b) in _PRIORS.items():
        x = float(point[name])
        out.append(math.log(x - a) - math.log(b - x) if kind == "uniform" else x)
    return np.array(out)


def _from_unconstrained(u: np.ndarray) -> dict[str, float]:
    """The inverse of :func:`_to_unconstrained`, kept strictly inside the uniforms' bounds."""
    out = {}
    for x, (name, (kind, a, b)) in zip(u, _PRIORS.items()):
        if kind == "uniform":
            frac = min(max(1.0 / (1.0 + math.exp(-min(max(x, -30.0), 30.0))), 1e-12), 1 - 1e-12)
            out[name] = a + (b - a) * frac
        else:
            out[name] = float(x)
    return out


def _convergence(params: dict[str, np.ndarray], forecast_last: np.ndarray) -> tuple[float, float, float]:
    """``(max R-hat over parameters, R-hat of the forecast, bulk ESS of the forecast)``.

    Arrays are ``(chains, draws)``; NaN where arviz cannot compute a value (too few draws).
    """
    az = _require_arviz()
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")  # arviz warns about short chains; the caller sees the numbers
        r_hats = [float(az.rhat(v)) for v in params.values()]
        r_hat_fc = float(az.rhat(forecast_last))
        ess_fc = float(az.ess(forecast_last, method="bulk"))
    finite = [r for r in r_hats if np.isfinite(r)]
    return (max(finite) if finite else float("nan")), r_hat_fc, ess_fc


def _describe(d: MCMCDiagnostics) -> str:
    return (
        f"{d.divergences} divergences ({d.divergence_fraction:.1%}), forecast R-hat {d.r_hat_forecast:.3f}, "
        f"parameter R-hat max {d.r_hat_max:.3f}, {d.kept_fraction:.1%} of draws inside the constraints"
    )


@contextlib.contextmanager
def _no_blas_warning():
    """PyTensor's C linker warns about a missing BLAS when PyMC compiles its helper functions;
    this model has no BLAS operations, so the warning says nothing about it."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*could not link to a BLAS")
        yield


def _quiet_import(module: str, feature: str):
    with warnings.catch_warnings():
        # arviz announces an upcoming refactor with a FutureWarning on import; it is not ours to show
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"arviz(\..*)?")
        return require(module, extra="mcmc", feature=feature)


def _require_pymc():
    return _quiet_import("pymc", "MCMCPredictor")


def _require_arviz():
    return _quiet_import("arviz", "MCMCPredictor")
