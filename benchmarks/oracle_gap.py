"""Where a model loses log-likelihood on reference-prior curves: its LL next to an oracle's, by noise level.

The oracle knows each curve's noiseless values ``f_t`` and noise std ``sigma`` and predicts
``N(f_t, sigma^2)`` for every future epoch: no PFN or MCMC can beat it on average, so
``oracle - model`` is the room left. Curves are ``ReferencePrior`` draws with ``--seed`` (seed 0 =
the curves of ``lcpfn evaluate --n-curves 1000 --seed 0``); the model's LL comes from the same
``LCPFN.predict`` + ``lcpfn.metrics.log_likelihood`` the harness uses (curves the model refuses
are left out of both columns).

    python benchmarks/oracle_gap.py --model reference --n-curves 1000 --seed 0
"""

from __future__ import annotations

import argparse
import logging

import numpy as np
import torch

from lcpfn import LCPFN
from lcpfn.errors import InputError
from lcpfn.metrics import log_likelihood
from lcpfn.priors import ReferencePrior

BUCKETS = [(0.0, 0.005), (0.005, 0.01), (0.01, 0.02), (0.02, 0.05), (0.05, 0.1), (0.1, np.inf)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", nargs="+", default=["reference"])
    ap.add_argument("--n-curves", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cutoffs", type=int, nargs="+", default=[10, 20, 40, 80])
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    logging.getLogger("lcpfn").setLevel(logging.ERROR)
    batch = ReferencePrior().sample(args.n_curves, generator=torch.Generator().manual_seed(args.seed))
    y, f = batch.values.double().numpy(), batch.noiseless.double().numpy()
    sigma = batch.noise_std.double().numpy()
    print(f"{args.n_curves} ReferencePrior curves, seed {args.seed}; LL = mean log density of the noisy "
          "values after the cutoff")
    for name in args.model:
        model = LCPFN.from_pretrained(name)
        print(f"\n### {name}: {model!r}\n")
        head = " | ".join(f"σ in [{lo:g}, {hi:g})" for lo, hi in BUCKETS)
        print(f"| cutoff | model LL | oracle LL | gap | gap by noise level (share of the gap): {head} |")
        print("|---" * (4 + len(BUCKETS)) + "|")
        for c in args.cutoffs:
            ll = np.full(args.n_curves, np.nan)
            for i in range(args.n_curves):  # one by one: a refused curve must not sink the others
                try:
                    fc = model.predict(y[i, :c], max_epochs=y.shape[1])
                except InputError:
                    continue
                ll[i] = float(log_likelihood(fc, y[i, c:])[0])
            resid = (y[:, c:] - f[:, c:]) / sigma[:, None]
            oracle = np.mean(-0.5 * np.log(2 * np.pi * sigma[:, None] ** 2) - 0.5 * resid**2, axis=1)
            ok = np.isfinite(ll)
            gap = oracle[ok] - ll[ok]
            cells = []
            for lo, hi in BUCKETS:
                m = (sigma[ok] >= lo) & (sigma[ok] < hi)
                cells.append(f"{gap[m].mean():.3f} ({gap[m].sum() / gap.sum():.0%}, n={m.sum()})" if m.any() else "–")
            print(f"| {c} % | {ll[ok].mean():.3f} | {oracle[ok].mean():.3f} | {gap.mean():.3f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
