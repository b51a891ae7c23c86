"""Forecast latency of ``LCPFN.predict`` for 1 and many curves, medians over repeats.

    python benchmarks/forecast_latency.py [--model reference] [--threads 1] [--repeats 20]

Prints one row per (curves, observed epochs) setting: median seconds per call and per curve.
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
    ap.add_argument("--model", default="reference")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 100, 1000])
    ap.add_argument("--cutoffs", type=int, nargs="+", default=[10, 50])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    # noisy prior curves leave [0, 1] a little; the per-call warning about it is not news here
    logging.getLogger("lcpfn").setLevel(logging.ERROR)
    model = LCPFN.from_pretrained(args.model)
    curves = ReferencePrior().sample(max(args.sizes), generator=torch.Generator().manual_seed(0)).values.numpy()
    print(f"model={args.model} ({model!r}), torch {torch.__version__}, threads={args.threads}, "
          f"cpu={platform.processor() or platform.machine()}")
    print(f"| curves | observed | median s / call | median ms / curve | repeats |")
    print(f"|---|---|---|---|---|")
    for n in args.sizes:
        for cut in args.cutoffs:
            x = curves[:n, :cut]
            model.predict(x, max_epochs=100).median()  # warm-up
            times = []
            reps = args.repeats if n <= 100 else max(3, args.repeats // 4)
            for _ in range(reps):
                t0 = time.perf_counter()
                fc = model.predict(x, max_epochs=100)
                fc.median(), fc.quantile(0.05), fc.quantile(0.95)
                times.append(time.perf_counter() - t0)
            med = statistics.median(times)
            print(f"| {n} | {cut} | {med:.4f} | {1000 * med / n:.3f} | {reps} |")


if __name__ == "__main__":
    main()
