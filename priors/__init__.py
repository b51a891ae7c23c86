"""Synthetic learning-curve priors (installed as ``lcpfn.priors``).

Each prior is a frozen dataclass with a ``name`` and a ``sample(batch_size, *, seq_len,
generator, device, dtype)`` method returning a :class:`CurveBatch`; the shipped ones subclass
:class:`CurvePrior`, which checks those arguments once (:class:`SampleRequest`).
:class:`RealRunPrior` wraps another prior (priors compose by wrapping). :func:`get_prior` rebuilds one
from its name and settings, as stored in a checkpoint's config.
The reference prior's parameter distributions are :mod:`lcpfn.priors.reference_params`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol, cast

import torch

from lcpfn.priors.base import CurveBatch, CurvePrior, SampleRequest
from lcpfn.priors.extended import ExtendedPrior
from lcpfn.priors.realrun import RealRunPrior
from lcpfn.priors.reference import PriorSamplingError, ReferencePrior

__all__ = [
    "CurveBatch", "CurvePrior", "ExtendedPrior", "Prior", "PriorSamplingError", "RealRunPrior", "ReferencePrior",
    "SampleRequest",
    "get_prior", "prior_to_dict", "PRIORS",
]


class Prior(Protocol):
    name: str

    def sample(
        self,
        batch_size: int,
        *,
        seq_len: int = ...,
        generator: torch.Generator | None = ...,
        device: torch.device | str | None = ...,
    ) -> CurveBatch: ...


PRIORS: dict[str, type] = {"reference": ReferencePrior, "extended": ExtendedPrior, "realrun": RealRunPrior}


def get_prior(name: str, **settings: Any) -> Prior:
    """The prior called ``name`` with the given settings (the dataclass fields)."""
    try:
        cls = PRIORS[name]
    except KeyError:
        raise ValueError(f"unknown prior {name!r}; known priors: {sorted(PRIORS)}") from None
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = set(settings) - fields
    if unknown:
        raise ValueError(f"prior {name!r} has no settings {sorted(unknown)}; it has {sorted(fields)}")
    return cls(**settings)


def prior_to_dict(prior: Prior) -> dict[str, Any]:
    """``{"name": ..., **settings}``, the inverse of :func:`get_prior`."""
    return {"name": prior.name, **dataclasses.asdict(cast(Any, prior))}  # every prior is a dataclass
