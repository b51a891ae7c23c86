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
``finetune`` fine-tune ``models/default`` on ExtendedPrior curves of a fixed budget ``B``
             (``seq_len=B``, so budget-tied components such as ``p_late_rise`` end at epoch ``B``),
             read as the prefix positions ``1..B`` of the native model: a ``B``-epoch specialist.

Usage:
  python benchmarks/late_risers.py traces --split dev --models default runs/b52/late30 --readings prefix stretch
  python benchmarks/late_risers.py ll --model default --split dev --n-curves 300
  python benchmarks/late_risers.py finetune --out runs/b52/late30 --p-late-rise 0.3 --minutes 40
  python benchmarks/pruner_replay.py ... --reading stretch      # the replay with the stretch reading
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

import lcpfn.predictor as _pred
from lcpfn import LCPFN

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"


class StretchReading:
    """``LCPFN.predict`` with a run shorter than the native length stretched over it.

    Epoch ``t`` of a ``max_epochs``-epoch run is shown to the model as ``t * L / max_epochs``
    (fractional positions; the model embeds ``t / L`` and ``log t``). Runs of ``L`` epochs or more
    are passed to ``predict`` unchanged.
    """

    def __init__(self, model: LCPFN) -> None:
        self.model = model

    def __repr__(self) -> str:
        return f"StretchReading({self.model!r})"

    def predict(self, curves, *, max_epochs, direction="maximize", bounds=None):
        m = self.model
        L = m.native_length
        if max_epochs >= L:
            return m.predict(curves, max_epochs=max_epochs, direction=direction, bounds=bounds)
        y, squeeze, direction, transform = _pred.prepare_unit_curves(
            curves, max_epochs=max_epochs, direction=direction, bounds=bounds
        )
        z = transform.to_model(y)
        n, t_obs = z.shape
        scale = L / max_epochs
        ctx_t = torch.arange(1, t_obs + 1, dtype=torch.float32) * scale
        qry_t = torch.arange(t_obs + 1, max_epochs + 1, dtype=torch.float32) * scale
        with torch.no_grad():
            logits = m.model(ctx_t.expand(n, -1), torch.as_tensor(z, dtype=torch.float32), qry_t.expand(n, -1))
        return _pred.BarForecast(
            logits=logits.float(), bar=m._bar_cpu, epochs=np.arange(t_obs + 1, max_epochs + 1),
            observed=y, transform=transform, direction=direction, squeeze=squeeze,
        )


def reader(model: LCPFN, reading: str):
    if reading == "prefix":
        return model
    if reading == "stretch":
        return StretchReading(model)
    raise SystemExit(f"unknown reading {reading!r}; known: prefix, stretch")


def cmd_traces(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(REPO / "benchmarks"))
    from pruner_replay import KNOWN_BOUNDS, load_tasks

    tasks = load_tasks("lcbench_surrogate", args.data, args.split)
    bounds = KNOWN_BOUNDS["lcbench_surrogate"]
    readers = {(name, r): reader(LCPFN.from_pretrained(name), r) for name in args.models for r in args.readings}
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
    from lcpfn import evaluate as E

    torch.set_num_threads(args.threads)
    m = LCPFN.from_pretrained(args.model)
    fcs = [E.forecaster_from_predictor(f"{args.model} ({r})", reader(m, r), key=f"late-risers|{args.model}|{r}")
           for r in ("prefix", "stretch")]
    ds = E.real_datasets(args.data, sources=["all"], split=args.split, n_curves=args.n_curves)
    res = E.evaluate(fcs, ds, inputs="raw")
    print(E.format_markdown(E.summarize(res)))


def cmd_finetune(args: argparse.Namespace) -> None:
    from lcpfn import checkpoint as ckpt
    from lcpfn.priors import get_prior, prior_to_dict

    torch.set_num_threads(args.threads)
    m = LCPFN.from_pretrained(args.init)
    if args.budget >= m.native_length:
        raise SystemExit(f"--budget must be below the native length {m.native_length}")
    model, bar = m.model, m.bar
    model.train()
    prior = get_prior("extended", p_late_rise=args.p_late_rise)
    gen = torch.Generator().manual_seed(args.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0, betas=(0.9, 0.99))
    B = args.budget
    t0 = time.time()
    step = curves = 0
    ema = math.nan
    while time.time() - t0 < args.minutes * 60:
        for g in opt.param_groups:
            g["lr"] = args.lr * min(1.0, (step + 1) / 50)
        batch = prior.sample(args.batch_size, seq_len=B, generator=gen)
        cut = int(torch.randint(1, B, (1,), generator=gen).item())
        x, y = batch.epochs, batch.values
        loss = bar(model(x[:, :cut], y[:, :cut], x[:, cut:]), y[:, cut:]).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        curves += args.batch_size
        ema = loss.item() if math.isnan(ema) else 0.98 * ema + 0.02 * loss.item()
        if step % 100 == 0:
            print(f"step {step} curves {curves} loss {ema:.4f} {curves / (time.time() - t0):.0f} curves/s", flush=True)
    model.eval()
    ckpt.save_model(args.out, model, bar, prior=prior_to_dict(prior),
                    extra={"step": step, "curves_seen": curves, "budget": B, "init_from": str(args.init), "final": True})
    print(f"saved {args.out}: {step} steps, {curves} curves, {time.time() - t0:.0f} s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DATA)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("traces")
    t.add_argument("--split", choices=["dev", "heldout", "all"], default="dev")
    t.add_argument("--models", nargs="+", default=["default"])
    t.add_argument("--readings", nargs="+", default=["prefix"])
    t.add_argument("--min-prob", type=float, default=0.05)
    t.add_argument("--first", type=int, default=2)
    t.add_argument("--last", type=int, default=45)
    l = sub.add_parser("ll")
    l.add_argument("--model", default="default")
    l.add_argument("--split", choices=["dev", "holdout", "all"], default="dev")
    l.add_argument("--n-curves", type=int, default=300)
    l.add_argument("--threads", type=int, default=1)
    f = sub.add_parser("finetune")
    f.add_argument("--out", required=True)
    f.add_argument("--init", default="default")
    f.add_argument("--p-late-rise", type=float, default=0.3)
    f.add_argument("--budget", type=int, default=52)
    f.add_argument("--minutes", type=float, default=40.0)
    f.add_argument("--batch-size", type=int, default=100)
    f.add_argument("--lr", type=float, default=3e-4)
    f.add_argument("--seed", type=int, default=7)
    f.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(getattr(args, "threads", 1))
    {"traces": cmd_traces, "ll": cmd_ll, "finetune": cmd_finetune}[args.cmd](args)


if __name__ == "__main__":
    main()
