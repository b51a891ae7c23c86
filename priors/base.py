"""What every prior returns: a typed, batch-first batch of curves."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class CurveBatch:
    """``batch_size`` curves of ``seq_len`` epochs, batch-first.

    Attributes:
        epochs: ``(B, L)`` float, the epoch of each point (``1..L``).
        values: ``(B, L)`` float, the noisy observed values (what the PFN is trained on).
        noiseless: ``(B, L)`` float, the curve before observation noise.
        noise_std: ``(B,)`` float, the standard deviation of the i.i.d. Gaussian noise.
    """

    epochs: torch.Tensor
    values: torch.Tensor
    noiseless: torch.Tensor
    noise_std: torch.Tensor

    def __post_init__(self) -> None:
        b, length = self.values.shape
        assert self.epochs.shape == (b, length) and self.noiseless.shape == (b, length)
        assert self.noise_std.shape == (b,)

    @property
    def batch_size(self) -> int:
        return self.values.shape[0]

    @property
    def seq_len(self) -> int:
        return self.values.shape[1]

    def to(self, device: torch.device | str) -> "CurveBatch":
        return CurveBatch(*(t.to(device) for t in (self.epochs, self.values, self.noiseless, self.noise_std)))
