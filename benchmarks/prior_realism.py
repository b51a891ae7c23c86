"""How real curves look against prior samples: shape statistics per source (issue 16, item 2).

For the **dev split** of every source in ``../shared/data`` (``lcpfn.evaluation.split_of``; the
holdout is never read) and for samples of the ``extended`` and ``realrun`` priors, per curve with
at least ``MIN_POINTS`` points, in the "higher is better" direction (a loss is negated; every
statistic is invariant to a positive affine map, so no further normalisation is needed), with
progress ``s = x / x_last`` (``x``: the curve's epochs, steps or training-set sizes) and ``R`` the
curve's range (max - min of its finite values):

``late rise``   the improvement over the last 20 % of the budget beats that over the 20 % before
                by more than ``0.02 R``: ``v(1) - v(0.8) > max(v(0.8) - v(0.6), 0) + 0.02 R``, with
                ``v(s*)`` the median of the ``max(3, n / 10)`` points nearest to progress ``s*``
                (an accelerating end, as learning-rate decay over the budget causes).
``spike``       some point ``i`` (not the first or last) lies more than ``max(0.1 R, 5 sd)``
                below both the median of the 3 points before it and the median of the 6 after it
                (``sd``: the noise std estimated as ``1.4826 median |diff| / sqrt 2``): a
                transient drop towards chance that recovers. ``spikes/100`` counts them per 100
                evaluations (over the curves with any).
``diverge``     a non-finite value (the source recorded a divergence), or a point ``i`` within
                ``0.1 R`` of the running maximum (which lies ``0.1 R`` above the first value: the
                curve had improved), from which within two evaluations every later point (at
                least 2) lies more than ``0.5 R`` below that maximum: a fall that stays (gradual
                overfitting is not that fast). Curves with ``R <= 10 sd`` (noise about a flat
                line) never count.
``mono``        the median over curves of the fraction of steps that do not go down.
``n``           the evaluation count (median, 90th percentile, maximum).
``spacing``     regular (largest / smallest gap <= 1.5, the last gap ignored: runs often end
                off-grid), log-like (the mean gap of the last quarter >= 3x that of the first
                quarter), else irregular; the fractions of curves.

Prior rows draw ``--n-prior`` curves (seed 0) at each ``--seq-len``. Real sources are
subsampled to ``--max-curves`` curves each (a fixed shuffle by curve index, seed 0).

    python benchmarks/prior_realism.py                      # the table in docs/priors.md
    python benchmarks/prior_realism.py --n-prior 4000 --seq-len 50 200 1000 --prior-setting p_spike=0.1
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from common import DATA

from lcpfn.evaluation.protocol import split_of
from lcpfn.priors import get_prior

MIN_POINTS = 8
EARLY = 0.1  # progress up to which a dip counts as a warm-up dip, not a spike
SOURCES = ("lcbench_surrogate", "taskset_dpl", "modded_nanogpt", "pythia", "lcdb")


@dataclass(frozen=True)
class Curve:
    """One curve: progress ``s`` ``(n,)`` in ``[0, 1]``, values ``z`` ``(n,)`` (higher is better,
    finite), and whether the source recorded a non-finite value (cut off before it)."""

    s: np.ndarray
    z: np.ndarray
    nonfinite: bool


def real_curves(source: str, data_dir: Path, *, max_curves: int, seed: int = 0) -> list[Curve]:
    """The dev-split curves of ``source`` with at least ``MIN_POINTS`` points (or a non-finite value)."""
    files = sorted((data_dir / source).glob("*.npz"))
    if not files:
        raise SystemExit(f"no .npz file under {data_dir / source}")
    out: list[Curve] = []
    for f in files:
        with np.load(f, allow_pickle=False) as z:
            values, steps, lengths = z["values"], z["steps"], z["lengths"]
            src, cid, hib = z["source"], z["config_id"], z["higher_is_better"]
        dev = np.flatnonzero([split_of(str(a), str(b)) == "dev" for a, b in zip(src, cid)])
        for i in np.random.default_rng(seed).permutation(dev):
            n = int(lengths[i])
            y = values[i, :n].astype(np.float64) * (1.0 if hib[i] else -1.0)
            x = steps[i, :n].astype(np.float64)
            bad = ~np.isfinite(y)
            cut = int(np.argmax(bad)) if bad.any() else n
            if cut < MIN_POINTS and not bad.any():
                continue
            s = x / x[n - 1] if x[n - 1] > 0 else np.linspace(0, 1, n)
            out.append(Curve(s[:cut], y[:cut], bool(bad.any())))
            if len(out) >= max_curves:
                break
    return out


def prior_curves(name: str, seq_len: int, n: int, *, settings: dict, seed: int = 0) -> list[Curve]:
    prior = get_prior(name, **settings)
    batch = prior.sample(n, seq_len=seq_len, generator=torch.Generator().manual_seed(seed))
    s = (batch.epochs / batch.epochs[:, -1:]).double().numpy()
    z = batch.values.double().numpy()
    return [Curve(s[i], z[i], False) for i in range(n)]


def _near(s: np.ndarray, z: np.ndarray, at: float, k: int) -> float:
    return float(np.median(z[np.argsort(np.abs(s - at), kind="stable")[:k]]))


def _noise_sd(z: np.ndarray) -> float:
    """The noise std, robustly: ``1.4826 median |diff| / sqrt 2`` (a trend adds little to it)."""
    return float(1.4826 * np.median(np.abs(np.diff(z))) / math.sqrt(2))


def late_gains(c: Curve) -> tuple[float, float, float]:
    """``(v(1) - v(0.8), v(0.8) - v(0.6), threshold)`` in units of the curve's range; a gain counts
    when above ``threshold = max(0.005, 3 sd sqrt(2 / k) / R)`` (noise in a difference of two
    ``k``-point medians, roughly)."""
    n, r = len(c.z), max(float(np.ptp(c.z)), 1e-300)
    k = max(3, round(n / 10))
    v6, v8, v1 = (_near(c.s, c.z, a, k) for a in (0.6, 0.8, 1.0))
    return (v1 - v8) / r, (v8 - v6) / r, max(0.005, 3 * _noise_sd(c.z) * math.sqrt(2 / k) / r)


def late_resolved(c: Curve) -> bool:
    """Whether the curve has at least 2 points in each of ``(0.6, 0.8]`` and ``(0.8, 1]``."""
    return bool(((c.s > 0.6) & (c.s <= 0.8)).sum() >= 2 and (c.s > 0.8).sum() >= 2)


def dips(c: Curve) -> tuple[int, int]:
    """``(early, late)``: points below both neighbourhoods by more than ``max(0.1 R, 5 sd)``, at
    progress ``<= EARLY`` (a warm-up dip) and after it (a spike)."""
    z, n, r = c.z, len(c.z), float(np.ptp(c.z))
    if r <= 0 or n < 4:
        return 0, 0
    thr = max(0.1 * r, 5 * _noise_sd(z))
    early = late = 0
    for i in range(1, n - 1):
        left, right = z[max(0, i - 3):i], z[i + 1:i + 7]
        if z[i] < min(np.median(left), np.median(right)) - thr:
            if c.s[i] <= EARLY:
                early += 1
            elif i >= 2:
                late += 1
    return early, late


def diverged(c: Curve) -> bool:
    if c.nonfinite:
        return True
    z, n, r = c.z, len(c.z), float(np.ptp(c.z))
    if r <= 10 * _noise_sd(z) or n < 4:
        return False
    runmax = np.maximum.accumulate(z)
    tail_max = np.maximum.accumulate(z[::-1])[::-1]  # tail_max[i] = max(z[i:])
    for i in range(1, n - 3):
        if z[i] >= runmax[i] - 0.1 * r > z[0] and tail_max[i + 2] < runmax[i] - 0.5 * r:
            return True
    return False


def monotone_fraction(c: Curve) -> float:
    return float(np.mean(np.diff(c.z) >= 0))


def spacing(c: Curve) -> str:
    g = np.diff(c.s)
    if len(g) < 4:
        return "regular"
    inner = g[:-1]
    if inner.max() <= 1.5 * max(inner.min(), 1e-15):
        return "regular"
    q = max(1, len(g) // 4)
    return "log" if g[-q:].mean() >= 3 * g[:q].mean() else "irregular"


def table_row(label: str, curves: Sequence[Curve]) -> dict[str, object]:
    usable = [c for c in curves if len(c.z) >= MIN_POINTS]
    resolved = [c for c in usable if late_resolved(c)]
    gains = np.array([late_gains(c) for c in resolved]).reshape(-1, 3)  # (n, 3): last 20 %, the 20 % before, thr
    improving = gains[:, 1] > gains[:, 2]
    ratio = gains[improving, 0] / gains[improving, 1]
    d = np.array([dips(c) for c in usable])  # (n, 2): early, late
    lengths = np.array([len(c.z) for c in usable])
    spiky = d[:, 1] > 0
    kinds = [spacing(c) for c in usable]
    n_all = np.array([len(c.z) for c in curves])
    return {
        "source": label,
        "curves": len(curves),
        "late gain > 0": float(np.mean(gains[:, 0] > gains[:, 2])) if len(gains) else math.nan,
        "late ratio": float(np.median(ratio)) if ratio.size else math.nan,
        "accelerating": float(np.mean(ratio > 1)) if ratio.size else math.nan,
        "early dip": float(np.mean(d[:, 0] > 0)),
        "spike": float(np.mean(spiky)),
        "spikes/100": float(np.mean(d[spiky, 1] / lengths[spiky] * 100)) if spiky.any() else 0.0,
        "diverge": float(np.mean([diverged(c) for c in curves])),
        "mono": float(np.median([monotone_fraction(c) for c in usable])),
        "n": f"{np.median(n_all):.0f} / {np.percentile(n_all, 90):.0f} / {n_all.max()}",
        "spacing r/l/i": "/".join(f"{kinds.count(k) / len(kinds):.2f}" for k in ("regular", "log", "irregular")),
    }


def markdown(rows: Iterable[dict[str, object]]) -> str:
    rows = list(rows)
    head = list(rows[0])
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [f"{v:.3f}" if isinstance(v, float) else str(v) for v in r.values()]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--sources", nargs="*", default=list(SOURCES))
    parser.add_argument("--max-curves", type=int, default=3000, help="dev curves per source")
    parser.add_argument("--priors", nargs="+", default=["extended", "realrun"])
    parser.add_argument("--n-prior", type=int, default=2000, help="prior curves per row")
    parser.add_argument("--seq-len", type=int, nargs="+", default=[52, 400])
    parser.add_argument("--prior-setting", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting of every prior in --priors after the first, VALUE in JSON (repeatable)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    settings = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.prior_setting)}
    torch.set_num_threads(1)

    rows = []
    for source in args.sources:
        rows.append(table_row(f"{source} (dev)", real_curves(source, args.data, max_curves=args.max_curves)))
    for j, name in enumerate(args.priors):
        for length in args.seq_len:
            extra = settings if j > 0 else {}
            rows.append(table_row(f"{name} L={length}", prior_curves(name, length, args.n_prior, settings=extra)))
    print(markdown(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
