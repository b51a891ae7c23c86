"""The reference LC-PFN prior ("Domhan-3") of Adriaensen et al. (2023), vectorised in torch.

A curve is ``y(t) = w1 pow3(t) + w2 ilog2(t) + w3 Janoschek(t) + eps_t`` for ``t = 1..L`` with
``w_k ~ U(0, 1)``, the basis-curve parameters drawn from the "peaked" priors of the reference
package (``lcpfn`` 0.1.3, ``lcpfn.curves``) and i.i.d. Gaussian noise of standard deviation
``exp(N(-4, 1))``; :mod:`lcpfn.priors.reference_params` is the table of these distributions.
Noiseless curves that do not end higher than they start, leave ``[0, 1]`` or
contain NaN are rejected and redrawn (weights included), exactly as the reference sampler does;
here the rejection is vectorised and bounded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lcpfn.priors.base import CurveBatch, CurvePrior, SampleRequest
from lcpfn.priors.reference_params import CURVE_PARAMS, NOISE_STD, Uniform


class PriorSamplingError(RuntimeError):
    """Rejection sampling did not find enough valid curves within its bound."""



@dataclass(frozen=True)
class ReferencePrior(CurvePrior):
    """Configuration of the reference prior; ``sample`` draws a batch from it.

    ``sample`` raises :class:`PriorSamplingError` if ``max_rounds`` rounds of vectorised rejection
    did not yield enough curves (never for the default settings). The noise std is
    ``exp(N(noise_log_mean, noise_log_std^2))``; the defaults are the reference's
    (:data:`~lcpfn.priors.reference_params.NOISE_STD`).
    """

    noise_log_mean: float = NOISE_STD.log_mean
    noise_log_std: float = NOISE_STD.log_std
    range_constraint: bool = True
    max_rounds: int = 64

    name = "reference"

    def _sample(self, request: SampleRequest) -> CurveBatch:
        batch_size, seq_len, kw = request.batch_size, request.seq_len, request.tensor_options
        t = torch.arange(1, seq_len + 1, device=request.device, dtype=request.dtype)
        kept: list[torch.Tensor] = []
        have = 0
        accept = 0.5  # running estimate of the acceptance rate, to size each round
        for _ in range(self.max_rounds):
            need = batch_size - have
            n_cand = max(64, math.ceil(1.2 * need / max(accept, 0.02)))
            y = _noiseless_curves(n_cand, t, request.generator)
            ok = y[:, -1] > y[:, 0]  # recheck on the full-precision path (same formula)
            if self.range_constraint:
                ok &= ((y >= 0) & (y <= 1)).all(dim=1)
            ok &= ~torch.isnan(y).any(dim=1)
            good = y[ok]
            accept = 0.5 * accept + 0.5 * max(good.shape[0] / n_cand, 1e-3)
            kept.append(good[:need])
            have += min(good.shape[0], need)
            if have >= batch_size:
                break
        else:
            raise PriorSamplingError(
                f"found only {have} of {batch_size} valid curves in {self.max_rounds} rounds"
            )
        noiseless = torch.cat(kept)
        log_std = self.noise_log_mean + self.noise_log_std * torch.randn(batch_size, **kw)
        noise_std = log_std.exp()
        eps = torch.randn(batch_size, seq_len, **kw)
        values = noiseless + noise_std[:, None] * eps
        return CurveBatch(
            epochs=t.expand(batch_size, seq_len),
            values=values,
            noiseless=noiseless,
            noise_std=noise_std,
        )


def _sample_params(n: int, generator: torch.Generator | None, device, dtype) -> torch.Tensor:
    """``(n, 12)`` draws of the weights and basis-curve parameters, columns as ``CURVE_PARAMS``."""
    kw = dict(generator=generator, device=device, dtype=dtype)
    n_uniform = sum(isinstance(dist, Uniform) for dist in CURVE_PARAMS.values())
    u = torch.rand(n, n_uniform, **kw).unbind(1)  # the uniform draws, in one call
    g = torch.randn(n, len(CURVE_PARAMS) - n_uniform, **kw).unbind(1)  # the normals behind the log-normals
    next_u, next_g = iter(u), iter(g)  # each parameter takes the next column of its kind, in table order
    columns = [
        dist.low + (dist.high - dist.low) * next(next_u)
        if isinstance(dist, Uniform)
        else torch.exp(dist.log_mean + dist.log_std * next(next_g))
        for dist in CURVE_PARAMS.values()
    ]
    return torch.stack(columns, dim=1)


def _curves(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Noiseless curves ``(n, L')`` of parameters ``p`` ``(n, 12)`` at epochs ``t`` ``(L',)``."""
    c = {name: p[:, j, None] for j, name in enumerate(CURVE_PARAMS)}  # (n, 1), to broadcast over epochs
    log_t = torch.log(t)
    pow3 = c["pow3_c"] - c["pow3_a"] * torch.exp(-c["pow3_alpha"] * log_t)  # c - a t^(-alpha)
    ilog2 = c["ilog2_c"] - c["ilog2_a"] / torch.log(t + 1)  # c - a / log(t + 1)
    ja, jb = c["janoschek_alpha"], c["janoschek_beta"]
    jan = ja - (ja - jb) * torch.exp(-c["janoschek_kappa"] * torch.exp(c["janoschek_delta"] * log_t))
    return c["w_pow3"] * pow3 + c["w_ilog2"] * ilog2 + c["w_janoschek"] * jan


def _noiseless_curves(n: int, t: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """``(m, L)`` candidate noiseless curves that already pass the endpoint test, ``m <= n``.

    Two-thirds of the candidates fail ``y(L) > y(1)``; testing the endpoints before evaluating
    whole curves triples throughput without changing which curves are accepted.
    """
    p = _sample_params(n, generator, t.device, t.dtype)
    ends = _curves(p, t[[0, -1]])
    p = p[ends[:, 1] > ends[:, 0]]
    return _curves(p, t)
