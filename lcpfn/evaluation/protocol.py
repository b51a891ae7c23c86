"""The paper's protocol: cutoffs, the dev/holdout split and Table 3's numbers.

Standard library only, so that ``lcpfn evaluate --help`` can show these defaults without
importing numpy or torch.
"""

from __future__ import annotations

import hashlib
import math
import numbers
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from lcpfn.errors import InputError

CUTOFFS: tuple[float, ...] = (0.1, 0.2, 0.4, 0.8)
"""The paper's cutoffs, as fractions of each curve's length."""

DEFAULT_SOURCES = ("lcbench_surrogate", "taskset_dpl")
"""The real sources evaluated by default: the two shaped like the paper's benchmarks (LCBench, TaskSet)."""

HOLDOUT_FRACTION = 0.3


@dataclass(frozen=True)
class PaperRow:
    """One row of the paper's Table 3 (LL on 10,000 prior curves; one Xeon Gold 6242 core)."""

    label: str
    method: str
    ll: tuple[float, float, float, float]  # at CUTOFFS
    seconds_per_curve: float


PAPER_TABLE3: tuple[PaperRow, ...] = (
    PaperRow(
        "M1", "MCMC (emcee), Domhan's settings: 2000 samples, 100 walkers, burn-in 500",
        (1.628, 1.939, 2.265, 2.469), 54.4,
    ),
    PaperRow("M3", "MCMC, best: 4000 samples, 100 walkers, burn-in 500", (1.642, 1.956, 2.285, 2.486), 103.2),
    PaperRow("P1", "PFN, 3 layers, emsize 128, 10M curves", (1.58, 1.99, 2.28, 2.43), 0.004),
    PaperRow("P2", "PFN, 3 layers, emsize 256, 10M curves", (1.65, 2.04, 2.35, 2.49), 0.006),
    PaperRow("P3", "PFN, 12 layers, emsize 512, 26M params, 10M curves", (1.76, 2.13, 2.40, 2.52), 0.050),
)  # fmt: skip


def cutoff_index(length: int, fraction: float) -> int:
    """Observed epochs ``c`` at cutoff ``fraction`` of a curve of ``length`` epochs.

    ``round(fraction * length)`` (halves up), clipped to ``[1, length - 1]``: 100 epochs give
    10/20/40/80, 52 give 5/10/21/42.
    """
    c = int(math.floor(fraction * length + 0.5))
    return min(max(c, 1), length - 1)


def split_of(source: str, config_id: str, *, holdout_fraction: float = HOLDOUT_FRACTION) -> Literal["dev", "holdout"]:
    """The split of a real curve: a hash of its source and configuration id, so a configuration
    is in the same split on every task and in every run. About ``holdout_fraction`` of the
    configurations are ``"holdout"``: never tune on them."""
    digest = hashlib.sha256(f"{source}\x00{config_id}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    return "holdout" if u < holdout_fraction else "dev"


def _check_cutoffs(cutoffs: Iterable[float]) -> tuple[float, ...]:
    out = []
    for f in cutoffs:
        if isinstance(f, bool) or not isinstance(f, (int, float)) or not (0.0 < f < 1.0):
            raise InputError(f"every cutoff must be a fraction in (0, 1), but got {f!r}")
        out.append(float(f))
    if not out:
        raise InputError("cutoffs must not be empty")
    return tuple(out)


def _check_positive_int(v: Any, name: str) -> None:
    # numbers.Integral covers numpy's integers too (numpy registers them)
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
        raise InputError(f"{name} must be a positive integer, but got {v!r}")
