"""The PFN's forecast, kept small: the output head's input, decoded chunk by chunk when asked.

Each marginal (one curve, one future epoch) of a PFN forecast is a bar distribution over ``K``
bins. Keeping it as ``K`` float32 logits costs ``4 K`` bytes (4 KB for the shipped models'
1000 bins), and the float64 probabilities and cumulative sums a quantile needs triple that: 10,000
curves forecast 80 epochs ahead took 15.7 GB. :class:`BarForecast` keeps instead what the output
head reads for that marginal, the transformer's ``d_model`` features after the final LayerNorm
(``4 d_model`` bytes: 512 B for the shipped models), and runs the head again, a chunk of
:data:`DECODE_BINS` bins at a time, whenever a method needs the bins. That is exact: the logits
are the ones ``PFN.forward`` returns (it is the same head on the same features).

Memory:

* held: ``4 d_model`` bytes per marginal (41 KB for a curve forecast 80 epochs ahead with the
  shipped models, ``d_model = 128``), plus what the base class keeps: the observed values, 1 B per
  marginal (which epochs a curve observed) and, once a bounded forecast's truncation is computed,
  24 B per marginal;
* while a method runs: one chunk of at most :data:`DECODE_BINS` bins as float32 logits and
  float64 probabilities and cumulative sums (20 B per bin: 84 MB) and their temporaries, about
  150 MB in all whatever the number of curves, plus the ``(n, H)`` float64 result (8 B per
  marginal). The last chunk decoded stays with the forecast (at most 84 MB).

Time: a method over every marginal (``quantile``, ``mean``, ``cdf``, ``log_prob``) runs the
head and the float64 bin arithmetic once per marginal, about as long as the forward pass that
made the forecast (a bounded forecast's first such call also finds the mass inside the bounds:
two more passes); one at a single epoch (``prob_above``, ``log_prob_at``) runs them once per
curve. Because the last chunk is kept, a forecast small enough to be one chunk
(``n H <= DECODE_BINS / K``: 4,194 marginals for 1000 bins, e.g. 42 curves forecast 99 epochs
ahead, the chunks :meth:`lcpfn.LCPFN.predict_iter` makes by default) is decoded once however many
methods are called.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from lcpfn.bar_distribution import BarDistribution
from lcpfn.forecast import Forecast

DECODE_BINS = 1 << 22
"""Most bins decoded at once (rows of the head's output times ``K``): bounds a method's scratch memory."""

_Key = tuple[Any, ...]


class _Decoded:
    """One chunk of marginals as logits ``(r, K)`` float32, and on demand their float64 bin
    probabilities and cumulative sums (the input of :class:`BarDistribution`'s ``*_probs``)."""

    __slots__ = ("logits", "_bar", "_pc")

    def __init__(self, logits: torch.Tensor, bar: BarDistribution) -> None:
        self.logits = logits
        self._bar = bar
        self._pc: tuple[torch.Tensor, torch.Tensor] | None = None

    def probs(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._pc is None:
            p = self._bar.probs(self.logits)
            self._pc = (p, torch.cumsum(p, dim=-1))
        return self._pc


class BarForecast(Forecast):
    """A forecast whose model-space marginals are bar distributions (one per future epoch).

    Args:
        features: ``(n, H, d_model)`` float32 on the CPU, the output head's input for each
            marginal (see the module docstring for why not the logits).
        head: the module mapping features ``(..., d_model)`` to logits ``(..., K)`` (the
            model's own head, not a copy: changing the model's weights changes the forecast).
        bar: the bar distribution (on the CPU) the logits parameterise.
        device: where the head runs (the model's device); the bin arithmetic runs there too on
            CUDA, on the CPU otherwise (MPS has no float64).
    """

    def __init__(
        self, *, features: torch.Tensor, head: nn.Module, bar: BarDistribution,
        device: str | torch.device = "cpu", **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if tuple(features.shape[:2]) != (self.n_curves, len(self.epochs)):
            raise AssertionError(f"features {tuple(features.shape)} do not match {self.n_curves} curves "
                                 f"x {len(self.epochs)} epochs")
        self.features = features  # (n, H, D)
        self.head = head
        self.bar = bar
        self._device = torch.device(device)
        self._math = self._device if self._device.type in ("cpu", "cuda") else torch.device("cpu")
        self._bar = bar if self._math.type == "cpu" else BarDistribution(bar.borders.to(self._math))
        self._rows = max(1, DECODE_BINS // bar.num_bins)  # marginals per decoded chunk
        self._memo: tuple[_Key, _Decoded] | None = None

    @property
    def logits(self) -> torch.Tensor:
        """``(n, H, K)`` float32 logits of every marginal, decoded now: ``4 K`` bytes per
        marginal, for inspecting small forecasts (the methods never build it)."""
        n, h, d = self.features.shape
        flat = self.features.reshape(n * h, d)
        with torch.no_grad():
            parts = [self._decode(flat[s : s + self._rows]).cpu() for s in range(0, n * h, self._rows)]
        return torch.cat(parts).reshape(n, h, -1)

    # --- decoding -------------------------------------------------------------------------------
    def _decode(self, features: torch.Tensor) -> torch.Tensor:
        """Features ``(r, D)`` -> logits ``(r, K)`` float32 where the arithmetic runs."""
        return self.head(features.to(self._device)).float().to(self._math)

    @torch.no_grad()
    def _decoded(self, key: _Key, features: torch.Tensor) -> _Decoded:
        """The chunk ``key`` (its ``features`` ``(r, D)``), decoded now or kept from the last call."""
        if self._memo is not None and self._memo[0] == key:
            return self._memo[1]
        self._memo = None  # let the last chunk go before the next one is decoded
        decoded = _Decoded(self._decode(features), self._bar)
        self._memo = (key, decoded)
        return decoded

    @torch.no_grad()
    def _each_marginal(self, fn: Callable[[_Decoded, int, int], torch.Tensor]) -> np.ndarray:
        """``(n, H)`` float64 from ``fn(chunk, start, stop)`` ``(stop - start,)`` over chunks of
        the marginals in row-major order (curve by curve, epoch by epoch)."""
        n, h, d = self.features.shape
        flat = self.features.reshape(n * h, d)
        out = np.empty(n * h, dtype=np.float64)
        for start in range(0, n * h, self._rows):
            stop = min(n * h, start + self._rows)
            chunk = self._decoded(("all", start, stop), flat[start:stop])
            out[start:stop] = fn(chunk, start, stop).double().cpu().numpy()
        return out.reshape(n, h)

    @torch.no_grad()
    def _at_epoch(self, h: int, z: np.ndarray, fn: Callable[[_Decoded, torch.Tensor], torch.Tensor]) -> np.ndarray:
        """``(n, G)`` float64 from ``fn(chunk, z_chunk)`` at epoch index ``h``, ``z`` ``(n, G)``:
        ``fn`` gets the chunk's marginals ``(c, K)`` and their ``(c, g)`` values."""
        n, g = z.shape
        zt = torch.from_numpy(np.ascontiguousarray(z, dtype=np.float64))
        out = np.empty((n, g), dtype=np.float64)
        per = max(1, self._rows // max(g, 1))  # curves per chunk: c x g values x K bins ~ DECODE_BINS
        step = max(1, min(g, self._rows))
        for c0 in range(0, n, per):
            c1 = min(n, c0 + per)
            chunk = self._decoded(("epoch", h, c0, c1), self.features[c0:c1, h])
            for g0 in range(0, g, step):
                g1 = min(g, g0 + step)
                out[c0:c1, g0:g1] = fn(chunk, zt[c0:c1, g0:g1].to(self._math)).double().cpu().numpy()
        return out

    def _flat(self, a: np.ndarray) -> torch.Tensor:
        """``(n, H)`` values -> ``(n H,)`` float64 in row-major order, as :meth:`_each_marginal` reads them."""
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64)).reshape(-1)

    # --- the model-space distribution (lcpfn.forecast.Forecast's hooks) -------------------------
    def _z_quantile(self, p: float) -> np.ndarray:
        def fn(chunk: _Decoded, start: int, stop: int) -> torch.Tensor:
            probs, cum = chunk.probs()
            return self._bar.icdf_probs(probs, p, cum)

        return self._each_marginal(fn)

    def _z_quantile_array(self, p: np.ndarray) -> np.ndarray:
        q = self._flat(p)

        def fn(chunk: _Decoded, start: int, stop: int) -> torch.Tensor:
            probs, cum = chunk.probs()
            return self._bar.icdf_probs(probs, q[start:stop].to(self._math), cum)

        return self._each_marginal(fn)

    def _z_cdf(self, z: np.ndarray, h: int | None) -> np.ndarray:
        if h is None:
            zt = self._flat(z)

            def fn(chunk: _Decoded, start: int, stop: int) -> torch.Tensor:
                probs, cum = chunk.probs()
                return self._bar.cdf_probs(probs, zt[start:stop].to(self._math), cum)

            return self._each_marginal(fn)

        def at(chunk: _Decoded, zc: torch.Tensor) -> torch.Tensor:
            probs, cum = chunk.probs()  # one epoch, g values: broadcast its bins over them
            g = zc.shape[1]
            return self._bar.cdf_probs(probs[:, None].expand(-1, g, -1), zc, cum[:, None].expand(-1, g, -1))

        return self._at_epoch(h, z, at)

    def _z_log_prob(self, z: np.ndarray, h: int | None) -> np.ndarray:
        if h is None:
            zt = self._flat(z)

            def fn(chunk: _Decoded, start: int, stop: int) -> torch.Tensor:
                return self._bar.log_prob(chunk.logits, zt[start:stop].to(self._math))

            return self._each_marginal(fn)

        def at(chunk: _Decoded, zc: torch.Tensor) -> torch.Tensor:
            return self._bar.log_prob(chunk.logits[:, None].expand(-1, zc.shape[1], -1), zc)

        return self._at_epoch(h, z, at)

    def _z_mean(self) -> np.ndarray:
        return self._each_marginal(lambda chunk, start, stop: self._bar.mean_probs(chunk.probs()[0]))

    def _z_mean_between(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        h = len(self.epochs)
        lo_t, hi_t = (torch.from_numpy(np.asarray(v, dtype=np.float64)) for v in (lo, hi))

        def fn(chunk: _Decoded, start: int, stop: int) -> torch.Tensor:
            curve = torch.arange(start, stop) // h  # the curve of each marginal in the chunk
            lo_c, hi_c = (v[curve].to(self._math) for v in (lo_t, hi_t))
            return self._bar.mean_between_probs(chunk.probs()[0], lo_c, hi_c)

        return self._each_marginal(fn)
