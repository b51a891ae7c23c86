"""MCMC baseline: the reference prior's exact posterior predictive, sampled with NUTS in PyMC.

:class:`MCMCPredictor` fits the model the reference PFN was trained on (the "Domhan-3" prior of
Adriaensen et al., 2023; ``lcpfn.priors.ReferencePrior``) to each observed curve and returns the
same :class:`~lcpfn.forecast.Forecast` interface as ``LCPFN.predict``, so the two can be swapped.

The model, in the unit-interval space of :func:`lcpfn.normalization.unit_transform`::

    mu(t)   = w1 pow3(t) + w2 ilog2(t) + w3 Janoschek(t)
    pow3      c - a t^(-alpha)
    ilog2     c - a / log(t + 1)
    Janoschek alpha - (alpha - beta) exp(-kappa t^delta)
    y_t ~ N(mu(t), sigma^2) i.i.d.
    priors    the reference prior's table, lcpfn.priors.reference_params (the torch sampler's
              too): w, c, a, Janoschek alpha, beta uniform; pow3 alpha, kappa, delta, sigma
              log-normal, each sampled as its logarithm (pow3_log_alpha, ..., log_sigma)

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

The PyMC model and the NUTS step are built and compiled once per predictor
(:mod:`lcpfn.mcmc_model`): the observed epochs and values enter through resizable ``pm.Data``
containers, so fitting another curve (of any length) only swaps data, restores the sampler's
pristine tuning state and samples. The forecast is a :class:`~lcpfn.mixture.MixtureForecast`.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from lcpfn.errors import InputError, require
from lcpfn.forecast import Predictor
from lcpfn.mcmc_model import (
    _NATIVE_TIMES,
    _PRIORS,
    NATIVE_LENGTH,
    CompiledModel,
    _from_unconstrained,
    _no_blas_warning,
    _sample_prior,
    _to_unconstrained,
    compile_model,
    constraint_weights,
    noise_log_prior,
    noiseless_curve,
    require_arviz,
    require_pymc,
    soft_constraints,
)
from lcpfn.mixture import MixtureForecast
from lcpfn.validation import CurveBatch

__all__ = ["MCMCPredictor", "MixtureForecast", "MCMCDiagnostics"]

logger = logging.getLogger(__name__)

# When a fit is reported as bad (a warning is logged; the numbers are always in the diagnostics).
MAX_DIVERGENCE_FRACTION = 0.01
MAX_R_HAT = 1.05
MIN_KEPT_FRACTION = 0.5
# Starting points: optima this far (log density) below the best one are not used.
INIT_LOGP_GAP = 2.0


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
            ``MIN_KEPT_FRACTION``) was crossed; derived from the fields above, not passed in.
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
    ok: bool = field(init=False)

    def __post_init__(self) -> None:
        ok = (
            self.divergence_fraction <= MAX_DIVERGENCE_FRACTION
            and self.kept_fraction >= MIN_KEPT_FRACTION
            and not (self.r_hat_forecast > MAX_R_HAT)  # nan (too few draws to tell) does not fail
        )
        object.__setattr__(self, "ok", ok)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class MCMCPredictor(Predictor):
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
        require_pymc()  # fail here, with the install hint, rather than at the first predict
        self._compiled: CompiledModel | None = None

    def __repr__(self) -> str:
        return (
            f"MCMCPredictor(chains={self.chains}, draws={self.draws}, tune={self.tune}, seed={self.seed}, "
            f"target_accept={self.target_accept}, max_treedepth={self.max_treedepth}, cores={self.cores}, "
            f"constraint_softness={self.constraint_softness}, init_candidates={self.init_candidates}, "
            f"mass_matrix={self.mass_matrix!r}, backend={self.backend!r})"
        )

    def _forecast(self, batch: CurveBatch) -> MixtureForecast:
        """Each curve is fitted separately (``n`` fits); per-curve diagnostics are in
        ``forecast.diagnostics`` and a warning is logged for every fit that crossed a threshold."""
        z = batch.z  # (n, T)
        n, t_obs = z.shape
        epochs = np.arange(t_obs + 1, batch.max_epochs + 1)
        seeds = self._curve_seeds(n)
        mus, sigmas, weights, diags = [], [], [], []
        for i in range(n):
            mu, sigma, w, diag = self._fit_one(z[i], epochs, batch.max_epochs, seeds[i])
            if not diag.ok:
                logger.warning("MCMC fit of curve %d looks unreliable: %s", i, _describe(diag))
            mus.append(mu)
            sigmas.append(sigma)
            weights.append(w)
            diags.append(diag)
        return MixtureForecast(
            mu=np.stack(mus), sigma=np.stack(sigmas), weights=np.stack(weights), epochs=epochs, observed=batch.y,
            transform=batch.transform, direction=batch.direction, squeeze=batch.squeeze, bounds=batch.bounds,
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
        pm = require_pymc()
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

        diag = _diagnose(idata, params, forecast_last, w, kept=kept, started=started)
        return mu, sigma, w, diag

    def _initial_points(
        self, z: np.ndarray, times: np.ndarray, rng: np.random.Generator, compiled: CompiledModel
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
            soft = soft_constraints(noiseless_curve(np, p, _NATIVE_TIMES), softness=self.constraint_softness)
            score = loglik + noise_log_prior(log_sigma) + soft
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
    def _compile(self) -> CompiledModel:
        if self._compiled is None:
            self._compiled = compile_model(
                softness=self.constraint_softness,
                target_accept=self.target_accept,
                max_treedepth=self.max_treedepth,
                mass_matrix=self.mass_matrix,
                backend=self.backend,
            )
        return self._compiled


def _diagnose(
    idata: Any, params: dict[str, np.ndarray], forecast_last: np.ndarray, weights: np.ndarray, *, kept: float,
    started: float,
) -> MCMCDiagnostics:
    """The diagnostics of one fit, ``started`` at that ``time.perf_counter()``.

    ``params`` and ``forecast_last`` (the noiseless forecast at the last epoch) are ``(chains,
    draws)`` arrays; ``weights`` ``(S,)`` are the draws' final weights and ``kept`` the fraction of
    draws inside the hard constraints.
    """
    chains, draws = forecast_last.shape
    diverging = np.asarray(idata.sample_stats["diverging"].values, dtype=bool)
    n_div = int(diverging.sum())
    r_hat_max, r_hat_fc, ess_fc = _convergence(params, forecast_last)
    imp_ess = float(weights.sum() ** 2 / max(float((weights**2).sum()), 1e-300))
    chain_logp = tuple(float(v) for v in idata.sample_stats["lp"].values.mean(axis=1))
    return MCMCDiagnostics(
        chains=chains, draws=draws, divergences=n_div, divergence_fraction=n_div / diverging.size,
        r_hat_max=r_hat_max, r_hat_forecast=r_hat_fc, ess_forecast=ess_fc,
        kept_fraction=kept, importance_ess=imp_ess, chain_mean_logp=chain_logp,
        seconds=time.perf_counter() - started,
    )


def _convergence(params: dict[str, np.ndarray], forecast_last: np.ndarray) -> tuple[float, float, float]:
    """``(max R-hat over parameters, R-hat of the forecast, bulk ESS of the forecast)``.

    Arrays are ``(chains, draws)``; NaN where arviz cannot compute a value (too few draws).
    """
    az = require_arviz()
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
