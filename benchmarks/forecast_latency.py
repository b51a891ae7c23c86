"""Forecast latency of ``LCPFN.predict`` for 1 and many curves, medians over repeats.

    python benchmarks/forecast_latency.py [--model reference [runs/other ...]] [--threads 1] [--repeats 20]

Prints one row per (model, curves, observed epochs): median seconds per call and per curve. With
several models, their calls alternate within each setting, so they are timed side by side under
the same load.
"""

from __future__ import annotations

import argparse
import logging
import platform
import statistics
import time

import numpy as np
import torch

from lcpfn import LCPFN
from lcpfn.priors import ReferencePrior


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", nargs="+", default=["reference"], help="shipped names or checkpoint directories")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 100, 1000])
    ap.add_argument("--cutoffs", type=int, nargs="+", default=[10, 50])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    # noisy prior curves leave [0, 1] a little; the per-call warning about it is not news here
    logging.getLogger("lcpfn").setLevel(logging.ERROR)
    models = {name: LCPFN.from_pretrained(name) for name in args.model}
    curves = ReferencePrior().sample(max(args.sizes), generator=torch.Generator().manual_seed(0)).values.numpy()
    print(f"torch {torch.__version__}, threads={args.threads}, cpu={platform.processor() or platform.machine()}")
    for name, model in models.items():
        print(f"- {name}: {model!r}, head_hidden={model.model.config.head_hidden}")
    print("| model | curves | observed | median s / call | median ms / curve | repeats |")
    print("|---|---|---|---|---|---|")
    for n in args.sizes:
        for cut in args.cutoffs:
            x = curves[:n, :cut]
            times: dict[str, list[float]] = {name: [] for name in models}
            for model in models.values():
                model.predict(x, max_epochs=100).median()  # warm-up
            reps = args.repeats if n <= 100 else max(3, args.repeats // 4)
            for _ in range(reps):
                for name, model in models.items():
                    t0 = time.perf_counter()
                    fc = model.predict(x, max_epochs=100)
                    fc.median(), fc.quantile(0.05), fc.quantile(0.95)
                    times[name].append(time.perf_counter() - t0)
            for name in models:
                med = statistics.median(times[name])
                print(f"| {name} | {n} | {cut} | {med:.4f} | {1000 * med / n:.3f} | {reps} |")

if __name__ == "__main__":
    main()
