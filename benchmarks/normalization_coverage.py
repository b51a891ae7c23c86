"""How much of real curves the prefix-inferred normalisation puts inside the model's ``[0, 1]``.

For every curve of the shared real-curve data (``../shared/data``, see its README) and every
cutoff (10/20/40/80 % observed, :func:`lcpfn.evaluation.cutoff_index`), the map of
:func:`lcpfn.normalization.infer_transform` is computed from the observed prefix alone, exactly as
``predict(..., bounds=...)`` computes it, and applied to the *future* values it never saw. The
table gives the fraction of future points with ``0 <= z <= 1`` and, in brackets, the fraction of
curves whose future lies entirely in ``[-0.1, 1.1]`` (within the prior's noise).

Curves are kept as ``lcpfn.evaluation`` keeps them: at least 10 points, all finite, and losses
never above 10x their first value (diverged runs). Each metric is measured with the bounds a
user would plausibly pass: losses ``(0, None)`` (known floor) and ``"infer"``; accuracies
``(0, None)``, ``(None, top)`` and ``"infer"`` (``top`` = 100 for percentages, else 1).

With ``--ll N`` it also scores the shipped reference model on ``N`` curves per metric of the
``dev`` split (:func:`lcpfn.evaluation.split_of`; never the holdout): the mean over curves of the
mean log density of the future values, in caller units, with ``bounds="infer"``, once with the
module's constants and once with ``--alt NAME=VALUE,...`` patched onto
:mod:`lcpfn.normalization` (default: the worst/best split 0.2 / 0.6). Same curves, same units, so
the two columns compare directly.

    python benchmarks/normalization_coverage.py [--data ../shared/data] [--ll 300]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import lcpfn.normalization as normalization
from common import DATA
from lcpfn.evaluation import cutoff_index, split_of
from lcpfn.normalization import check_bounds, infer_transform

CUTOFFS = (0.1, 0.2, 0.4, 0.8)
FILES = {
    "lcbench_surrogate": "lcbench_surrogate/yahpo_lcbench_surrogate_sample.npz",
    "taskset_dpl": "taskset_dpl/taskset_dpl.npz",
    "pythia": "pythia/pythia.npz",
    "lcdb": "lcdb/lcdb.npz",
    "modded_nanogpt": "modded_nanogpt/modded_nanogpt.npz",
}


def load(path: Path, split: str = "all") -> dict[tuple[str, bool], list[np.ndarray]]:
    """Kept curves by (metric, higher_is_better)."""
    with np.load(path, allow_pickle=False) as z:  # each z[...] decompresses: read every array once
        values, lengths, hibs, metrics = z["values"], z["lengths"], z["higher_is_better"], z["metric"]
        sources, configs = z["source"], z["config_id"]
    out: dict[tuple[str, bool], list[np.ndarray]] = {}
    for i, n in enumerate(lengths):
        if split != "all" and split_of(str(sources[i]), str(configs[i])) != split:
            continue
        y = values[i, : int(n)].astype(np.float64)
        hib = bool(hibs[i])
        if n < 10 or not np.all(np.isfinite(y)):
            continue
        if not hib and (y[0] <= 0 or y.max() > 10 * y[0]):
            continue
        out.setdefault((str(metrics[i]), hib), []).append(y)
    return out


def scenarios(metric: str, hib: bool, curves: list[np.ndarray]):
    if not hib:
        return [(0.0, None), "infer"]
    top = 100.0 if max(c.max() for c in curves) > 1.5 else 1.0
    return [(0.0, None), (None, top), "infer"]


def coverage(curves: list[np.ndarray], direction: str, bounds, f: float) -> tuple[float, float, int]:
    inside = total = good_curves = 0
    by_len: dict[int, list[np.ndarray]] = {}
    for c in curves:
        by_len.setdefault(len(c), []).append(c)
    for length, group in by_len.items():
        y = np.stack(group)
        c = cutoff_index(length, f)
        t = infer_transform(y[:, :c], direction=direction, bounds=check_bounds(bounds))
        z = t.to_model(y[:, c:])
        inside += int(((z >= 0) & (z <= 1)).sum())
        total += z.size
        good_curves += int(np.all((z >= -0.1) & (z <= 1.1), axis=1).sum())
    return inside / total, good_curves / len(curves), len(curves)


def log_likelihood(model, curves: list[np.ndarray], direction: str, f: float) -> float:
    """Mean over curves of the mean log density of the future values, ``bounds="infer"``."""
    lls: list[float] = []
    by_len: dict[int, list[np.ndarray]] = {}
    for c in curves:
        by_len.setdefault(len(c), []).append(c)
    for length, group in by_len.items():
        y = np.stack(group)
        c = cutoff_index(length, f)
        fc = model.predict(y[:, :c], max_epochs=length, direction=direction, bounds="infer")
        lls.extend(fc.log_prob(y[:, c:]).mean(axis=1))
    return float(np.mean(lls))


def ll_table(data: str, n: int, alt: dict[str, float]) -> None:
    from lcpfn import LCPFN

    model = LCPFN.from_pretrained("reference")
    shipped = {k: getattr(normalization, k) for k in alt}
    rng = np.random.default_rng(0)
    print(f"\nReference model, bounds=\"infer\", dev split, mean LL: shipped {shipped} / alternative {alt}\n")
    print("| source | metric | curves | " + " | ".join(f"{int(100 * f)} %" for f in CUTOFFS) + " |")
    print("|---|---|---|" + "---|" * len(CUTOFFS))
    for source, rel in FILES.items():
        path = Path(data) / rel
        if not path.is_file():
            continue
        for (metric, hib), curves in sorted(load(path, split="dev").items()):
            curves = [curves[i] for i in rng.permutation(len(curves))[:n]]
            direction = "maximize" if hib else "minimize"
            cells = []
            for f in CUTOFFS:
                a = log_likelihood(model, curves, direction, f)
                try:
                    for k, v in alt.items():
                        setattr(normalization, k, v)
                    b = log_likelihood(model, curves, direction, f)
                finally:
                    for k, v in shipped.items():
                        setattr(normalization, k, v)
                cells.append(f"{a:.2f} / {b:.2f}")
            print(f"| {source} | {metric} ({direction[:3]}) | {len(curves)} | " + " | ".join(cells) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--ll", type=int, default=0, metavar="N", help="also score the reference model on N curves")
    ap.add_argument("--alt", default="NO_BOUND_WORST_Z=0.2,NO_BOUND_BEST_Z=0.6")
    args = ap.parse_args()
    print("| source | metric | curves | bounds | " + " | ".join(f"{int(100 * f)} %" for f in CUTOFFS) + " |")
    print("|---|---|---|---|" + "---|" * len(CUTOFFS))
    for source, rel in FILES.items():
        path = Path(args.data) / rel
        if not path.is_file():
            continue
        for (metric, hib), curves in sorted(load(path).items()):
            direction = "maximize" if hib else "minimize"
            for bounds in scenarios(metric, hib, curves):
                cells = []
                for f in CUTOFFS:
                    pts, crv, n = coverage(curves, direction, bounds, f)
                    cells.append(f"{pts:.3f} ({crv:.2f})")
                b = f"`{bounds!r}`".replace("'", '"')
                print(f"| {source} | {metric} ({direction[:3]}) | {n} | {b} | " + " | ".join(cells) + " |")
    if args.ll:
        alt = {k: float(v) for k, v in (kv.split("=") for kv in args.alt.split(","))}
        ll_table(args.data, args.ll, alt)


if __name__ == "__main__":
    main()
