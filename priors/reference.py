"""The reference LC-PFN prior ("Domhan-3") of Adriaensen et al. (2023), vectorised in torch.

A curve is ``y(t) = w1 pow3(t) + w2 Janoschek(t) + w3 ilog2(t) + eps_t`` for ``t = 1..L`` with
``w_k ~ U(0, 1)``, the basis-curve parameters drawn from the "peaked" priors of the reference
package (``lcpfn`` 0.1.3, ``lcpfn.curves``) and i.i.d. Gaussian noise of standard deviation
``exp(N(-4, 1))``. Noiseless curves that do not end higher than they start, leave ``[0, 1]`` or
contain NaN are rejected and redrawn (weights included), exactly as the reference sampler does;
here the rejection is vectorised and bounded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lcpfn.priors.base import CurveBatch


class PriorSamplingError(RuntimeError):
    """Rejection sampling did not find enough valid curves within its bound."""


@dataclass(frozen=True)
class ReferencePrior:
    """Configuration of the reference prior; ``sample`` draws a batch from it."""

    noise_log_mean: float = -4.0
    noise_log_std: float = 1.0
    range_constraint: bool = True
    max_rounds: int = 64

    name = "reference"

    def sample(
        self,
        batch_size: int,
        *,
        seq_len: int = 100,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> CurveBatch:
        """Draw ``batch_size`` curves of ``seq_len`` epochs.

        ``generator`` makes the draw reproducible; its device decides where sampling happens
        (``device`` defaults to it). Raises :class:`PriorSamplingError` if ``max_rounds`` rounds
        of vectorised rejection did not yield enough curves (never for the default settings).
        """
        if batch_size < 1 or seq_len < 2:
            raise ValueError(f"batch_size must be >= 1 and seq_len >= 2, got {batch_size}, {seq_len}")
        if device is None:
            device = generator.device if generator is not None else torch.device("cpu")
        t = torch.arange(1, seq_len + 1, device=device, dtype=dtype)
        kept: list[torch.Tensor] = []
        have = 0
        accept = 0.5  # running estimate of the acceptance rate, to size each round
        for _ in range(self.max_rounds):
            need = batch_size - have
            n_cand = max(64, math.ceil(1.2 * need / max(accept, 0.02)))
            y = _noiseless_curves(n_cand, t, generator)
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
        log_std = self.noise_log_mean + self.noise_log_std * torch.randn(
            batch_size, generator=generator, device=device, dtype=dtype
        )
        noise_std = log_std.exp()
        eps = torch.randn(batch_size, seq_len, generator=generator, device=device, dtype=dtype)
        values = noiseless + noise_std[:, None] * eps
        return CurveBatch(
            epochs=t.expand(batch_size, seq_len),
            values=values,
            noiseless=noiseless,
            noise_std=noise_std,
        )


def _sample_params(n: int, generator: torch.Generator | None, device, dtype) -> torch.Tensor:
    """``(n, 12)`` draws of the basis-curve weights and parameters (columns in ``_curves``)."""
    kw = dict(generator=generator, device=device, dtype=dtype)
    u = torch.rand(n, 9, **kw)  # the uniform draws, in one call
    g = torch.randn(n, 3, **kw)  # the normals behind the log-normal draws
    return torch.stack(
        [
            u[:, 0], u[:, 1], u[:, 2],  # weights of pow3, ilog2, Janoschek: U(0, 1)
            1.25 * u[:, 3],  # pow3 c ~ U(0, 1.25)
            1.2 * u[:, 4] - 0.6,  # pow3 a ~ U(-0.6, 0.6)
            torch.exp(2.0 * g[:, 0]),  # pow3 alpha ~ LogNormal(0, 2)
            u[:, 5],  # ilog2 c ~ U(0, 1)
            u[:, 6] - 0.5,  # ilog2 a ~ U(-0.5, 0.5)
            u[:, 7],  # Janoschek alpha ~ U(0, 1)
            2.0 * u[:, 8],  # Janoschek beta ~ U(0, 2)
            torch.exp(-2.0 + g[:, 1]),  # Janoschek kappa ~ LogNormal(-2, 1)
            torch.exp(0.5 * g[:, 2]),  # Janoschek delta ~ LogNormal(0, 0.5)
        ],
        dim=1,
    )


def _curves(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Noiseless curves ``(n, L')`` of parameters ``p`` ``(n, 12)`` at epochs ``t`` ``(L',)``."""
    col = lambda j: p[:, j, None]  # noqa: E731  (n,) -> (n, 1), to broadcast over epochs
    log_t = torch.log(t)
    pow3 = col(3) - col(4) * torch.exp(-col(5) * log_t)  # c - a t^(-alpha)
    ilog2 = col(6) - col(7) / torch.log(t + 1)  # c - a / log(t + 1)
    jan = col(8) - (col(8) - col(9)) * torch.exp(-col(10) * torch.exp(col(11) * log_t))
    return col(0) * pow3 + col(1) * ilog2 + col(2) * jan


def _noiseless_curves(n: int, t: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """``(m, L)`` candidate noiseless curves that already pass the endpoint test, ``m <= n``.

    Two-thirds of the candidates fail ``y(L) > y(1)``; testing the endpoints before evaluating
    whole curves triples throughput without changing which curves are accepted.
    """
    p = _sample_params(n, generator, t.device, t.dtype)
    ends = _curves(p, t[[0, -1]])
    p = p[ends[:, 1] > ends[:, 0]]
    return _curves(p, t)
