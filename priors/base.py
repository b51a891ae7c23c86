"""What every prior shares: the ``sample`` call and the typed, batch-first batch it returns."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypedDict

import torch

if TYPE_CHECKING:
    from typing_extensions import Unpack


@dataclass(frozen=True)
class CurveBatch:
    """``batch_size`` curves of ``seq_len`` epochs, batch-first.

    Attributes:
        epochs: ``(B, L)`` float, the epoch of each point: increasing per curve in ``(0, L]``, ``1..L``
            for the regular priors, fractional for irregular evaluation points; the last is the budget.
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

    def to(self, device: torch.device | str) -> CurveBatch:
        return CurveBatch(*(t.to(device) for t in (self.epochs, self.values, self.noiseless, self.noise_std)))


class SampleOptions(TypedDict, total=False):
    """The keyword options of :meth:`CurvePrior.sample`; :class:`SampleRequest` says what they mean."""

    seq_len: int
    generator: torch.Generator | None
    device: torch.device | str | None
    dtype: torch.dtype


@dataclass(frozen=True)
class SampleRequest:
    """One checked ``sample`` call: what to draw, where and with which generator.

    Attributes:
        batch_size: the number of curves, at least 1.
        seq_len: epochs per curve, at least 2.
        generator: makes the draw reproducible; ``None``: torch's global generator.
        device: where sampling happens and the tensors live; defaults to the generator's device
            (the CPU without a generator).
        dtype: the floating-point type of every returned tensor.
    """

    batch_size: int
    seq_len: int = 100
    generator: torch.Generator | None = None
    device: torch.device | str | None = None
    dtype: torch.dtype = torch.float32

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.seq_len < 2:
            raise ValueError(f"batch_size must be >= 1 and seq_len >= 2, got {self.batch_size}, {self.seq_len}")
        if self.device is None:
            device = self.generator.device if self.generator is not None else torch.device("cpu")
            object.__setattr__(self, "device", device)

    @property
    def tensor_options(self) -> dict[str, Any]:
        """``generator``, ``device`` and ``dtype``, as keywords of ``torch.rand`` and friends."""
        return {"generator": self.generator, "device": self.device, "dtype": self.dtype}


class CurvePrior(ABC):
    """Base of the priors: ``sample`` checks its arguments once and calls ``_sample``."""

    name: ClassVar[str]

    def sample(self, batch_size: int, **options: Unpack[SampleOptions]) -> CurveBatch:
        """Draw ``batch_size`` curves; ``options`` (``seq_len=100``, ``generator``, ``device``,
        ``dtype=torch.float32``) are the fields of :class:`SampleRequest`."""
        return self._sample(SampleRequest(batch_size, **options))

    @abstractmethod
    def _sample(self, request: SampleRequest) -> CurveBatch:
        """Draw the batch ``request`` asks for."""
