"""The PyMC model behind :class:`lcpfn.mcmc.MCMCPredictor`: the reference prior, its constraints,
and the NUTS step, built and compiled once.

Nothing here imports PyMC, PyTensor or SciPy at import time; :func:`compile_model` does.
The parameter priors are :mod:`lcpfn.priors.reference_params`, the table the torch sampler
(:class:`lcpfn.priors.ReferencePrior`) reads too; the curve formula is :func:`noiseless_curve`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import warnings
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from lcpfn.errors import require
from lcpfn.priors.reference_params import CURVE_PARAMS, NOISE_STD, Uniform, log_name

logger = logging.getLogger(__name__)

NATIVE_LENGTH = 100
"""Length of the reference prior's curves: the constraints hold on epochs 1..100."""


def _free_parameters() -> dict[str, tuple[Literal["uniform", "normal"], float, float]]:
    """The sampled parameters and their priors, in the reference table's order, then the noise:
    ``("uniform", low, high)`` for a uniform parameter, ``("normal", mean, std)`` for the logarithm
    (named by :func:`~lcpfn.priors.reference_params.log_name`) of a log-normal one."""
    out: dict[str, tuple[Literal["uniform", "normal"], float, float]] = {}
    for name, dist in [*CURVE_PARAMS.items(), ("sigma", NOISE_STD)]:
        if isinstance(dist, Uniform):
            out[name] = ("uniform", dist.low, dist.high)
        else:
            out[log_name(name)] = ("normal", dist.log_mean, dist.log_std)
    return out


_PRIORS = _free_parameters()
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


def soft_constraints(mu_native: np.ndarray, *, softness: float) -> np.ndarray:
    """``(S,)`` the smoothed constraints' log factor ``sum_k log sigmoid(g_k / softness)``."""
    total = np.zeros(np.shape(mu_native)[0])
    for g in _constraint_margins(np, mu_native, axis=1):  # in order, as sum() adds them
        total = total + _log_sigmoid(g / softness)
    return total


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


def noise_log_prior(log_sigma: np.ndarray) -> np.ndarray:
    """The prior log density of ``log_sigma``, up to a constant."""
    return -0.5 * ((log_sigma - NOISE_STD.log_mean) / NOISE_STD.log_std) ** 2


# --------------------------------------------------------------------------------------------------
# Parameters: prior draws and PyMC's unconstrained space
# --------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------
# The PyMC model and its NUTS step
# --------------------------------------------------------------------------------------------------


@dataclass
class CompiledModel:
    """The PyMC model and its NUTS step, compiled once; the step's state before any tuning."""

    model: Any
    step: Any
    pristine_state: Any
    logp_dlogp: Any


def build_model(*, softness: float) -> Any:
    """The PyMC model: priors, likelihood and smoothed constraints (softness ``tau``).

    The observed model times and values are the resizable ``pm.Data`` containers ``obs_time`` and
    ``obs_value`` (set them with ``pm.set_data``), so any curve reuses this graph.
    """
    pm = require_pymc()
    import pytensor.tensor as pt

    with pm.Model() as model, _no_blas_warning():
        obs_time = pm.Data("obs_time", np.arange(1.0, 3.0))
        obs_value = pm.Data("obs_value", np.zeros(2))
        p = {}
        for name, (kind, a, b) in _PRIORS.items():
            p[name] = pm.Uniform(name, a, b) if kind == "uniform" else pm.Normal(name, a, b)
        resid = (obs_value - noiseless_curve(pt, p, obs_time)) * pt.exp(-p["log_sigma"])
        log_norm = -0.5 * resid**2 - p["log_sigma"] - 0.5 * math.log(2 * math.pi)
        pm.Potential("log_likelihood", pt.sum(log_norm))
        margins = _constraint_margins(pt, noiseless_curve(pt, p, _NATIVE_TIMES), axis=0)
        pm.Potential("constraints", sum(-pt.softplus(-g / softness) for g in margins))
    return model


def compile_model(
    *,
    softness: float,
    target_accept: float,
    max_treedepth: int,
    mass_matrix: Literal["full", "diag"],
    backend: Literal["numba", "c"],
) -> CompiledModel:
    """:func:`build_model` with its NUTS step and, for polishing starting points, its log density
    and gradient on the raveled unconstrained vector (order: ``_PRIORS``)."""
    pm = require_pymc()
    from pymc.step_methods.hmc import quadpotential

    started = time.perf_counter()
    model = build_model(softness=softness)
    with model, _no_blas_warning():
        n_free = len(_PRIORS)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*experimental feature")
            potential = (
                quadpotential.QuadPotentialFullAdapt(n_free, np.zeros(n_free))
                if mass_matrix == "full"
                else quadpotential.QuadPotentialDiagAdapt(n_free, np.zeros(n_free), np.ones(n_free), 10)
            )
        compile_kwargs = {"mode": "NUMBA"} if backend == "numba" else {}
        step = pm.NUTS(
            target_accept=target_accept,
            max_treedepth=max_treedepth,
            potential=potential,
            compile_kwargs=compile_kwargs,
        )
    logp_dlogp = model.logp_dlogp_function(ravel_inputs=True, **compile_kwargs)
    logp_dlogp.set_extra_values({})
    assert [v.name for v in step.vars] == [_value_name(n) for n in _PRIORS]
    logger.info("compiled the MCMC model (%s backend) in %.1f s", backend, time.perf_counter() - started)
    return CompiledModel(model=model, step=step, pristine_state=step.sampling_state, logp_dlogp=logp_dlogp)


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


def require_pymc():
    """``pymc``, or :class:`~lcpfn.errors.MissingDependencyError` naming the ``mcmc`` extra."""
    return _quiet_import("pymc", "MCMCPredictor")


def require_arviz():
    """``arviz``, or :class:`~lcpfn.errors.MissingDependencyError` naming the ``mcmc`` extra."""
    return _quiet_import("arviz", "MCMCPredictor")
