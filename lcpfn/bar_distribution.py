"""The discretised ("bar") output distribution of a PFN, with half-normal tails.

``K`` bins with borders ``b_0 < ... < b_K``; the network outputs ``K`` logits per target. Inner
bins ``1..K-2`` are uniform on ``[b_i, b_{i+1})``. The outer bins carry full support: bin 0 is a
half-normal extending left from ``b_1`` and bin ``K-1`` one extending right from ``b_{K-1}``, each
scaled so that half its mass lies within the bin's own width (as in the PFN reference code), so
any real value has finite log density. Borders come from quantiles of prior samples, which makes
every bin equally likely under the prior.

All methods take logits of shape ``(..., K)`` and values/probabilities of shape ``(...)`` and
broadcast nothing else: callers expand logits to match.
"""

from __future__ import annotations

import math

import torch
from torch import nn

_HALF_NORMAL_MEDIAN = math.sqrt(2.0) * 0.4769362762044699  # erfinv(0.5): median of |N(0, 1)|
_LOG_SQRT_2_OVER_PI = 0.5 * math.log(2.0 / math.pi)


def borders_from_samples(samples: torch.Tensor, num_bins: int) -> torch.Tensor:
    """``num_bins + 1`` borders at equally spaced quantiles of ``samples`` (any shape).

    Ties (a value repeated across a quantile) are spread so borders increase strictly.
    """
    if num_bins < 3:
        raise ValueError(f"num_bins must be at least 3 but got {num_bins}")
    x = samples.detach().flatten().double()
    x = x[torch.isfinite(x)]
    if x.numel() < num_bins * 10:
        raise ValueError(f"need at least {num_bins * 10} finite samples for {num_bins} bins, got {x.numel()}")
    x, _ = torch.sort(x)
    idx = torch.linspace(0, x.numel() - 1, num_bins + 1, dtype=torch.float64).round().long()
    borders = x[idx]
    min_width = (borders[-1] - borders[0]).item() * 1e-6
    for i in range(1, num_bins + 1):  # strictly increasing; only a tie-break, rarely touched
        if borders[i] <= borders[i - 1]:
            borders[i] = borders[i - 1] + min_width
    return borders.float()


class BarDistribution(nn.Module):
    """Bar distribution with half-normal tails over fixed ``borders`` ``(K + 1,)``."""

    borders: torch.Tensor

    def __init__(self, borders: torch.Tensor) -> None:
        super().__init__()
        borders = torch.as_tensor(borders, dtype=torch.float32)
        if borders.ndim != 1 or borders.numel() < 4 or not bool((borders[1:] > borders[:-1]).all()):
            raise ValueError("borders must be a 1-D, strictly increasing tensor of at least 4 values")
        if not bool(torch.isfinite(borders).all()):
            raise ValueError(f"borders must be finite, but run from {borders[0].item()} to {borders[-1].item()}")
        self.register_buffer("borders", borders)

    @property
    def num_bins(self) -> int:
        return self.borders.numel() - 1

    @property
    def widths(self) -> torch.Tensor:
        return self.borders[1:] - self.borders[:-1]

    def _tail_scales(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Half-normal scales of the two tails, in float64."""
        w = self.widths.double()
        return w[0] / _HALF_NORMAL_MEDIAN, w[-1] / _HALF_NORMAL_MEDIAN

    def forward(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Negative log density of ``y`` ``(...)`` — the training loss, per target."""
        return -self.log_prob(logits, y)

    def log_prob(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Log density of ``y`` ``(...)`` under ``logits`` ``(..., K)``."""
        # float32 even under bf16 autocast: bin widths of ~1e-4 need the precision
        b = self.borders.float()
        y = y.float()
        logp = torch.log_softmax(logits.float(), dim=-1)
        k = self.num_bins
        idx = (torch.searchsorted(b, y.contiguous(), right=True) - 1).clamp(0, k - 1)
        logp_bin = logp.gather(-1, idx.unsqueeze(-1)).squeeze(-1)
        inner = logp_bin - torch.log(b[1:] - b[:-1])[idx]
        s_lo, s_hi = (s.float() for s in self._tail_scales())
        # half-normal log density of the distance into the tail
        d_lo = (b[1] - y).clamp_min(0)
        d_hi = (y - b[-2]).clamp_min(0)
        lo = logp[..., 0] + _LOG_SQRT_2_OVER_PI - torch.log(s_lo) - 0.5 * (d_lo / s_lo) ** 2
        hi = logp[..., -1] + _LOG_SQRT_2_OVER_PI - torch.log(s_hi) - 0.5 * (d_hi / s_hi) ** 2
        return torch.where(y < b[1], lo, torch.where(y >= b[-2], hi, inner))

    def probs(self, logits: torch.Tensor) -> torch.Tensor:
        """Bin probabilities ``(..., K)`` in float64, the input of the ``*_probs`` methods."""
        return torch.softmax(logits.double(), dim=-1)

    def cdf(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``P(Y <= y)`` for ``y`` ``(...)`` under ``logits`` ``(..., K)``."""
        return self.cdf_probs(self.probs(logits), y)

    def cdf_probs(self, p: torch.Tensor, y: torch.Tensor, cum: torch.Tensor | None = None) -> torch.Tensor:
        """:meth:`cdf` from bin probabilities ``p`` (and optionally their ``cumsum``)."""
        b = self.borders.double()
        y = y.double()
        k = self.num_bins
        cum = (torch.cumsum(p, dim=-1) if cum is None else cum) - p  # mass strictly below each bin
        idx = (torch.searchsorted(b, y.contiguous(), right=True) - 1).clamp(0, k - 1)
        p_bin = p.gather(-1, idx.unsqueeze(-1)).squeeze(-1)
        below = cum.gather(-1, idx.unsqueeze(-1)).squeeze(-1)
        frac = ((y - b[idx]) / (b[idx + 1] - b[idx])).clamp(0, 1)
        inner = below + p_bin * frac
        s_lo, s_hi = (s.double() for s in self._tail_scales())
        sqrt2 = math.sqrt(2.0)
        lo = p[..., 0] * torch.erfc((b[1] - y).clamp_min(0) / (s_lo * sqrt2))
        hi = 1.0 - p[..., -1] + p[..., -1] * torch.erf((y - b[-2]).clamp_min(0) / (s_hi * sqrt2))
        out = torch.where(y < b[1], lo, torch.where(y >= b[-2], hi, inner))
        return out.clamp(0.0, 1.0)

    def icdf(self, logits: torch.Tensor, q: float | torch.Tensor) -> torch.Tensor:
        """The ``q``-quantile ``(...)``; ``q`` a float in (0, 1) or a tensor of shape ``(...)``."""
        return self.icdf_probs(self.probs(logits), q)

    def icdf_probs(self, p: torch.Tensor, q: float | torch.Tensor, cum: torch.Tensor | None = None) -> torch.Tensor:
        """:meth:`icdf` from bin probabilities ``p`` (and optionally their ``cumsum``)."""
        b = self.borders.double()
        q = torch.as_tensor(q, dtype=torch.float64, device=p.device).expand(p.shape[:-1])
        k = self.num_bins
        cum = torch.cumsum(p, dim=-1) if cum is None else cum
        # first bin whose cumulative mass reaches q
        idx = torch.searchsorted(cum, q.unsqueeze(-1).contiguous()).squeeze(-1).clamp(0, k - 1)
        p_bin = p.gather(-1, idx.unsqueeze(-1)).squeeze(-1)
        below = (cum.gather(-1, idx.unsqueeze(-1)).squeeze(-1) - p_bin)
        frac = ((q - below) / p_bin.clamp_min(1e-300)).clamp(0, 1)
        inner = b[idx] + frac * (b[idx + 1] - b[idx])
        s_lo, s_hi = (s.double() for s in self._tail_scales())
        sqrt2 = math.sqrt(2.0)
        eps = 1e-12
        # left tail: q = p0 * erfc(d / (s sqrt2))  ->  d = s sqrt2 erfcinv(q / p0)
        r_lo = (q / p[..., 0].clamp_min(1e-300)).clamp(eps, 1.0)
        lo = b[1] - s_lo * sqrt2 * torch.erfinv(1.0 - r_lo)
        # right tail: q = 1 - pK + pK erf(d / (s sqrt2))
        r_hi = ((q - (1.0 - p[..., -1])) / p[..., -1].clamp_min(1e-300)).clamp(0.0, 1.0 - eps)
        hi = b[-2] + s_hi * sqrt2 * torch.erfinv(r_hi)
        return torch.where(idx == 0, lo, torch.where(idx == k - 1, hi, inner))

    def quantile(self, logits: torch.Tensor, q: float | torch.Tensor) -> torch.Tensor:
        return self.icdf(logits, q)

    def median(self, logits: torch.Tensor) -> torch.Tensor:
        return self.icdf(logits, 0.5)

    def mean(self, logits: torch.Tensor) -> torch.Tensor:
        """The mean ``(...)`` of the distribution under ``logits`` ``(..., K)``."""
        return self.mean_probs(self.probs(logits))

    def mean_probs(self, p: torch.Tensor) -> torch.Tensor:
        """:meth:`mean` from bin probabilities ``p``."""
        b = self.borders.double()
        centers = (b[1:] + b[:-1]) / 2
        s_lo, s_hi = (s.double() for s in self._tail_scales())
        half_normal_mean = math.sqrt(2.0 / math.pi)
        centers = centers.clone()
        centers[0] = b[1] - s_lo * half_normal_mean
        centers[-1] = b[-2] + s_hi * half_normal_mean
        return p @ centers

    def mean_between_probs(self, p: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
        """The mean of the distribution with bin probabilities ``p`` ``(..., K)`` conditioned on
        ``lo <= Y <= hi``, exactly: ``(...)``.

        ``lo`` and ``hi`` broadcast against ``p.shape[:-1]`` and may be ``-inf`` / ``inf`` (a side
        without a limit). Each inner bin contributes the part of its uniform mass inside, at the
        midpoint of that part; each tail the first moment of its truncated half-normal. NaN where
        no mass lies inside (the caller falls back, see :class:`lcpfn.forecast.Forecast`).
        """
        b = self.borders.double().to(p.device)
        shape = p.shape[:-1]
        lo = torch.as_tensor(lo, dtype=torch.float64, device=p.device).expand(shape).unsqueeze(-1)
        hi = torch.as_tensor(hi, dtype=torch.float64, device=p.device).expand(shape).unsqueeze(-1)
        # inner bins: [b_k, b_{k+1}) intersected with [lo, hi]
        left = torch.minimum(torch.maximum(lo, b[:-1]), b[1:])
        right = torch.maximum(torch.minimum(hi, b[1:]), left)
        mass = p * (right - left) / (b[1:] - b[:-1])  # (..., K)
        moment = mass * (left + right) / 2
        s_lo, s_hi = (s.double() for s in self._tail_scales())
        lo, hi = lo.squeeze(-1), hi.squeeze(-1)
        # left tail: x = b_1 - s u, u >= 0 with density 2 phi(u) (mass p_0); inside: x in [x_lo, x_hi]
        x_hi = torch.minimum(hi, b[1])
        x_lo = torch.minimum(lo, x_hi)
        u_near, u_far = (b[1] - x_hi) / s_lo, (b[1] - x_lo) / s_lo
        m_lo = p[..., 0] * _half_normal_mass(u_near, u_far)
        mom_lo = b[1] * m_lo - 2 * p[..., 0] * s_lo * (_phi(u_near) - _phi(u_far))
        # right tail: x = b_{K-1} + s u
        x_lo = torch.maximum(lo, b[-2])
        x_hi = torch.maximum(hi, x_lo)
        u_near, u_far = (x_lo - b[-2]) / s_hi, (x_hi - b[-2]) / s_hi
        m_hi = p[..., -1] * _half_normal_mass(u_near, u_far)
        mom_hi = b[-2] * m_hi + 2 * p[..., -1] * s_hi * (_phi(u_near) - _phi(u_far))
        inner_mass = mass[..., 1:-1].sum(-1)
        inner_moment = moment[..., 1:-1].sum(-1)
        return (inner_moment + mom_lo + mom_hi) / (inner_mass + m_lo + m_hi)


def _phi(u: torch.Tensor) -> torch.Tensor:
    """The standard normal density (0 at infinity)."""
    return torch.exp(-0.5 * u * u) / math.sqrt(2 * math.pi)


def _half_normal_mass(u_near: torch.Tensor, u_far: torch.Tensor) -> torch.Tensor:
    """``P(u_near <= |N(0, 1)| <= u_far)`` for ``0 <= u_near <= u_far`` (``u_far`` may be infinite)."""
    sqrt2 = math.sqrt(2.0)
    return torch.erfc(u_near / sqrt2) - torch.erfc(u_far / sqrt2)
