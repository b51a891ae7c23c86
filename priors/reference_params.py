"""The reference prior's parameter distributions, written once.

Both samplers of the reference prior read this table: :class:`lcpfn.priors.ReferencePrior` (torch,
by rejection) and the PyMC model of :class:`lcpfn.mcmc.MCMCPredictor`, whose free parameters are
these, with every log-normal one sampled as its logarithm (``pow3_alpha`` as ``pow3_log_alpha``,
the noise std as ``log_sigma``; see :func:`log_name`).

The distributions are those of the reference package's "peaked" priors (``lcpfn`` 0.1.3,
``lcpfn.curves``; Adriaensen et al., 2023). The curve is::

    w_pow3 pow3(t) + w_ilog2 ilog2(t) + w_janoschek Janoschek(t),
    pow3(t)      = pow3_c - pow3_a t^(-pow3_alpha)
    ilog2(t)     = ilog2_c - ilog2_a / log(t + 1)
    Janoschek(t) = janoschek_alpha - (janoschek_alpha - janoschek_beta) exp(-janoschek_kappa t^janoschek_delta)

for epochs ``t = 1..L``, observed with i.i.d. Gaussian noise of standard deviation
:data:`NOISE_STD`. The table is plain numbers; this module imports nothing of the project.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True)
class Uniform:
    """``U(low, high)``."""

    low: float
    high: float


@dataclass(frozen=True)
class LogNormal:
    """``exp(N(log_mean, log_std^2))``: the parameter's logarithm is normal."""

    log_mean: float
    log_std: float


Distribution = Uniform | LogNormal

CURVE_PARAMS: Mapping[str, Distribution] = MappingProxyType(
    {
        "w_pow3": Uniform(0.0, 1.0),
        "w_ilog2": Uniform(0.0, 1.0),
        "w_janoschek": Uniform(0.0, 1.0),
        "pow3_c": Uniform(0.0, 1.25),
        "pow3_a": Uniform(-0.6, 0.6),
        "pow3_alpha": LogNormal(0.0, 2.0),
        "ilog2_c": Uniform(0.0, 1.0),
        "ilog2_a": Uniform(-0.5, 0.5),
        "janoschek_alpha": Uniform(0.0, 1.0),
        "janoschek_beta": Uniform(0.0, 2.0),
        "janoschek_kappa": LogNormal(-2.0, 1.0),
        "janoschek_delta": LogNormal(0.0, 0.5),
    }
)
"""The weights and basis-curve parameters, in the column order of the samplers' parameter arrays.
The order is part of the prior: the torch sampler draws the uniform and the normal columns in it,
so reordering changes which curves a seed gives."""

NOISE_STD = LogNormal(-4.0, 1.0)
"""The per-curve standard deviation of the observation noise (``log sigma ~ N(-4, 1)``)."""


def log_name(name: str) -> str:
    """The name of a log-normal parameter's logarithm: ``pow3_alpha`` -> ``pow3_log_alpha``,
    ``sigma`` -> ``log_sigma``."""
    head, _, last = name.rpartition("_")
    return f"{head}_log_{last}" if head else f"log_{last}"
