"""Probes for the LCBench late risers that LCPFNPruner prunes (issue 5, session 6).

A *late riser* is a study's best configuration whose curve is flat or falling for a while and then
climbs past the others (LCBench anneals the learning rate over the run's budget). Three probes:

``traces``   for every task of a split: the forecast P(final value > runner-up's final value) of
             the best configuration's curve at each epoch, per model and reading; lists the
             winners the 0.05 rule would prune (two consecutive checks below ``--min-prob``).
``ll``       log-likelihood on the real dev curves of the two ways to read a run shorter than the
             model's native length ``L``: ``prefix`` (what ``LCPFN.predict`` does: epoch ``t`` is
             model epoch ``t``, the run is the start of an ``L``-epoch curve) and ``stretch``
             (epoch ``t`` is model epoch ``t * L / max_epochs``: the run's last epoch is the
             prior's last, where the prior's budget-tied components end).
``finetune`` fine-tune ``models/default`` on ExtendedPrior curves of a fixed budget ``B`` with
             ``lcpfn.train`` (``TrainConfig(budget=B)``: budget-tied components such as
             ``p_late_rise`` end at epoch ``B``, and the checkpoint's native length is ``B``): a
             ``B``-epoch specialist. Batch 100, constant lr after 50 warm-up steps.

Usage:
  python benchmarks/late_risers.py traces --split dev --models default runs/b52/late30 --readings prefix stretch
  python benchmarks/late_risers.py ll --model default --split dev --n-curves 300
  python benchmarks/late_risers.py finetune --out runs/b52/late30 --p-late-rise 0.3 --curves 620000 [--minutes 40]
  python benchmarks/pruner_replay.py ... --reading stretch      # the replay with the stretch reading
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import torch

from common import DATA, KNOWN_BOUNDS, READINGS, load_tasks, read_as
from lcpfn import LCPFN


def cmd_traces(args: argparse.Namespace) -> None:
    tasks = load_tasks("lcbench_surrogate", args.data, args.split)
    bounds = KNOWN_BOUNDS["lcbench_surrogate"]
    models = {name: LCPFN.from_pretrained(name) for name in args.models}
    readers = {(name, r): read_as(models[name], r) for name in args.models for r in args.readings}
    print(f"LCBench {args.split}: P(best configuration's final > runner-up's final) at epochs "
          f"{args.first}..{args.last}, bounds {bounds}; 'pruned' = two consecutive epochs below {args.min_prob}\n")
    print("| task | winner | runner-up | " + " | ".join(f"{n} ({r}): min P, pruned" for n, r in readers) + " |")
    print("|---|---|---|" + "---|" * len(readers))
    counts = {k: 0 for k in readers}
    for task in tasks:
        fin = task.values[:, -1]
        order = np.argsort(-fin)
        curve, runner_up = task.values[order[0]], fin[order[1]]
        T = len(curve)
        cells = []
        for key, rd in readers.items():
            steps = list(range(args.first, min(args.last, T - 1) + 1))
            ps = np.array([float(rd.predict(curve[:s], max_epochs=T, bounds=bounds).prob_improve(runner_up)) for s in steps])
            low = ps < args.min_prob
            pruned = bool(np.any(low[1:] & low[:-1]))
            counts[key] += pruned
            cells.append(f"{ps.min():.3f}, {'**yes**' if pruned else 'no'}")
        print(f"| {task.name} | {fin[order[0]]:.2f} | {runner_up:.2f} | " + " | ".join(cells) + " |")
    print("\nwinners the rule would prune: " + ", ".join(f"{n} ({r}) {c}/{len(tasks)}" for (n, r), c in counts.items()))


def cmd_ll(args: argparse.Namespace) -> None:
    from lcpfn import evaluation as E

    torch.set_num_threads(args.threads)
    m = LCPFN.from_pretrained(args.model)
    fcs = [E.forecaster_from_predictor(f"{args.model} ({r})", read_as(m, r), key=f"late-risers|{args.model}|{r}")
           for r in READINGS]
    ds = E.real_datasets(args.data, sources=["all"], split=args.split, n_curves=args.n_curves)
    res = E.evaluate(fcs, ds, inputs="raw")
    print(E.format_markdown(E.summarize(res)))


def cmd_finetune(args: argparse.Namespace) -> None:
    from lcpfn.train import TrainConfig, train

    # TrainConfig's architecture fields must match the checkpoint it starts from.
    architecture = dataclasses.asdict(LCPFN.from_pretrained(args.init).model.config)
    config = TrainConfig(
        out_dir=str(args.out), init_from=str(args.init), **architecture,
        prior="extended", prior_settings={"p_late_rise": args.p_late_rise}, budget=args.budget,
        steps=max(1, args.curves // args.batch_size), batch_size=args.batch_size,
        lr=args.lr, min_lr=args.lr, warmup_steps=50, seed=args.seed, threads=args.threads, device="cpu",
    )
    time_limit = None if args.minutes is None else 60 * args.minutes
    result = train(config, resume=args.resume, time_limit_s=time_limit, progress=False)
    print(f"saved {result.out_dir}: {result.step} steps, {result.curves_seen} curves, "
          f"{result.wall_time_s:.0f} s, loss {result.loss:.4f}" + ("" if result.finished else " (not finished: --resume)"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DATA)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("traces")
    t.add_argument("--split", choices=["dev", "heldout", "all"], default="dev")
    t.add_argument("--models", nargs="+", default=["default"])
    t.add_argument("--readings", nargs="+", choices=list(READINGS), default=["prefix"])
    t.add_argument("--min-prob", type=float, default=0.05)
    t.add_argument("--first", type=int, default=2)
    t.add_argument("--last", type=int, default=45)
    e = sub.add_parser("ll")
    e.add_argument("--model", default="default")
    e.add_argument("--split", choices=["dev", "holdout", "all"], default="dev")
    e.add_argument("--n-curves", type=int, default=300)
    e.add_argument("--threads", type=int, default=1)
    f = sub.add_parser("finetune")
    f.add_argument("--out", required=True)
    f.add_argument("--init", default="default", help="shipped model name or checkpoint directory to start from")
    f.add_argument("--p-late-rise", type=float, default=0.3)
    f.add_argument("--budget", type=int, default=52)
    f.add_argument("--curves", type=int, default=620_000, help="training curves (steps = curves / batch size)")
    f.add_argument("--minutes", type=float, default=None, help="stop early after this long (resume with --resume)")
    f.add_argument("--resume", action="store_true", help="continue the run in --out")
    f.add_argument("--batch-size", type=int, default=100)
    f.add_argument("--lr", type=float, default=3e-4)
    f.add_argument("--seed", type=int, default=7)
    f.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(getattr(args, "threads", 1))
    {"traces": cmd_traces, "ll": cmd_ll, "finetune": cmd_finetune}[args.cmd](args)


if __name__ == "__main__":
    main()
