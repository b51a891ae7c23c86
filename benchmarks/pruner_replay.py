"""Replay real learning curves as Optuna trials and compare LCPFNPruner with Optuna's pruners.

Each study is one task of a source in ``../shared/data``: its configurations' curves, in a random
order, become the study's trials; each trial reports its curve step by step through
``trial.report`` / ``trial.should_prune`` and stops when pruned. A study costs the number of
reported values (epochs); its regret is how much worse the best final value among its COMPLETE
trials is than the best final value of all its curves (what no pruning finds).

Sources (``--sources``):
  lcbench_surrogate  34 tasks x 30 configurations x 52 epochs, val accuracy in % (maximize);
                     every configuration of a task in each study.
  taskset_dpl        12 tasks x 1000 configurations x 51 evaluations (steps 0..50), valid loss
                     (minimize), with diverged (NaN, huge) values; ``--taskset-configs`` random
                     configurations of a task per study.

Splits (``--split``): tasks sorted by name; even positions are ``dev`` (used to choose the
pruner's design), odd positions are ``heldout`` (never tuned on); ``all`` is both.

LCPFNPruner settings are named ``lcpfn@P[/wN][/cK]``: ``min_prob=P``, ``n_warmup_steps=N``,
``n_confirm=K``; every combination of ``--min-probs``, ``--warmups`` and ``--confirms`` is replayed.

Usage:
  python benchmarks/pruner_replay.py --sources lcbench_surrogate taskset_dpl --split heldout \\
      --seeds 3 --min-probs 0.01 0.05 0.1 --plot-dir benchmarks/results

The time per should_prune call is measured by benchmarks/pruner_overhead.py (it was ``--overhead`` here).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
import warnings
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import optuna
import torch

from common import DATA, KNOWN_BOUNDS, SOURCES, Task, load_tasks, read_as
from lcpfn import LCPFN
from lcpfn.integrations.optuna import LCPFNPruner

BASELINES = ["nop", "median", "percentile25", "hyperband", "patient5", "wilcoxon"]


@dataclass(frozen=True)
class StudyResult:
    source: str
    task: str
    seed: int
    pruner: str
    n_trials: int
    epochs: int  # values reported, summed over trials
    n_pruned: int
    oracle: float  # best finite final value among the study's curves
    found: float  # best final value among COMPLETE trials
    median_final: float  # median finite final value among the study's curves
    noise: float  # median over curves of the white-noise std of the last 10 values
    regret: float  # |found - oracle|, metric units
    seconds_per_check: float  # mean wall time of trial.should_prune()


def make_pruner(name: str, *, max_resource: int, model: LCPFN,
                bounds: tuple[float | None, float | None] | None = None) -> optuna.pruners.BasePruner:
    if name.startswith("lcpfn@"):  # lcpfn@<min_prob>[/w<n_warmup_steps>][/c<n_confirm>][/h]
        min_prob, *options = name[len("lcpfn@"):].split("/")
        opts = {o[0]: int(o[1:] or 1) for o in options}
        return LCPFNPruner(max_resource=max_resource, min_prob=float(min_prob), n_warmup_steps=opts.get("w", 0),
                           n_confirm=opts.get("c", 1), history=bool(opts.get("h", 0)), bounds=bounds, model=model)
    if name == "nop":
        return optuna.pruners.NopPruner()
    if name == "median":
        return optuna.pruners.MedianPruner()
    if name == "percentile25":
        return optuna.pruners.PercentilePruner(25.0)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max_resource, reduction_factor=3)
    if name == "patient5":
        return optuna.pruners.PatientPruner(None, patience=5)
    if name == "wilcoxon":
        return optuna.pruners.WilcoxonPruner(p_threshold=0.1)
    raise SystemExit(f"unknown pruner {name!r}")


def white_noise_std(values: np.ndarray, last: int = 10) -> float:
    """Median over curves of std(diff(last values)) / sqrt(2): the noise of a locally flat curve."""
    stds = []
    for row in values:
        tail = row[np.isfinite(row)][-last:]
        if tail.size >= 3:
            stds.append(np.std(np.diff(tail)) / math.sqrt(2.0))
    return float(np.median(stds)) if stds else math.nan


def replay(task: Task, order: np.ndarray, pruner_name: str, seed: int, model: LCPFN,
           bounds: tuple[float | None, float | None] | None = None) -> StudyResult:
    maximize = task.direction == "maximize"
    max_resource = int(task.steps[-1])
    study = optuna.create_study(
        # A fixed name: HyperbandPruner assigns trials to brackets by hashing the study name.
        study_name=f"{task.source}-{task.name}-{seed}-{pruner_name}",
        direction=task.direction,
        pruner=make_pruner(pruner_name, max_resource=max_resource, model=model, bounds=bounds),
        sampler=optuna.samplers.RandomSampler(seed=seed),
    )
    epochs = n_pruned = n_checks = 0
    check_seconds = 0.0
    for i in order:
        trial = study.ask()
        pruned = False
        for step, value in zip(task.steps, task.values[i]):
            trial.report(float(value), int(step))
            epochs += 1
            t0 = time.perf_counter()
            pruned = trial.should_prune()
            check_seconds += time.perf_counter() - t0
            n_checks += 1
            if pruned:
                break
        final = task.values[i, -1]
        if pruned:
            n_pruned += 1
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        elif math.isfinite(final):
            study.tell(trial, float(final))
        else:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
    finals = task.values[order, -1]
    finite = finals[np.isfinite(finals)]
    oracle = float(finite.max() if maximize else finite.min())
    completed = [t.value for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    worst = float(finite.min() if maximize else finite.max())
    found = float(max(completed) if maximize else min(completed)) if completed else worst
    return StudyResult(
        source=task.source,
        task=task.name,
        seed=seed,
        pruner=pruner_name,
        n_trials=len(order),
        epochs=epochs,
        n_pruned=n_pruned,
        oracle=oracle,
        found=found,
        median_final=float(np.median(finite)),
        noise=white_noise_std(task.values[order]),
        regret=abs(found - oracle),
        seconds_per_check=check_seconds / max(n_checks, 1),
    )


def summarize(results: list[StudyResult], source: str) -> list[dict]:
    rows = []
    by_pruner: dict[str, list[StudyResult]] = {}
    for r in results:
        if r.source == source:
            by_pruner.setdefault(r.pruner, []).append(r)
    nop = {(r.task, r.seed): r for r in by_pruner.get("nop", [])}
    for name, rs in by_pruner.items():
        epochs = sum(r.epochs for r in rs)
        nop_epochs = sum(nop[(r.task, r.seed)].epochs for r in rs) if nop else math.nan
        regrets = np.array([r.regret for r in rs])
        # Regret relative to the gap between the best and the median configuration of the study.
        rel = np.array([r.regret / abs(r.median_final - r.oracle) if r.median_final != r.oracle else 0.0 for r in rs])
        rows.append(
            dict(
                pruner=name,
                studies=len(rs),
                epochs=epochs,
                speedup=nop_epochs / epochs,
                regret=float(regrets.mean()),
                regret_se=float(regrets.std(ddof=1) / math.sqrt(len(rs))) if len(rs) > 1 else math.nan,
                regret_rel=float(rel.mean()),
                zero_regret=float(np.mean(regrets == 0.0)),
                noise=float(np.median([r.noise for r in rs])),
                ms_per_check=1000 * float(np.mean([r.seconds_per_check for r in rs])),
            )
        )
    return rows


def print_table(source: str, rows: list[dict]) -> None:
    print(f"\n### {source}\n")
    print("| pruner | studies | epochs | fewer epochs than nop | mean regret (± s.e.) | regret / (best − median) | studies with 0 regret | ms / should_prune |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['pruner']} | {r['studies']} | {r['epochs']} | {r['speedup']:.2f}× | {r['regret']:.4g} ± {r['regret_se']:.2g} "
            f"| {r['regret_rel']:.3f} | {100 * r['zero_regret']:.0f} % | {r['ms_per_check']:.2f} |"
        )
    noise = rows[0]["noise"] if rows else math.nan
    print(f"\nCurve noise (median white-noise std of the last 10 values): {noise:.4g}")


def plot(source: str, rows: list[dict], path: Path, title: str) -> None:
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure registry

    fig = Figure(figsize=(6.4, 4.4))
    ax = fig.subplots()
    groups: dict[str, list[dict]] = {}
    for r in rows:  # one line per setting other than min_prob ("", "/w5", "/c2", "/w5/c2", ...)
        if r["pruner"].startswith("lcpfn@"):
            groups.setdefault(r["pruner"].partition("@")[2].partition("/")[2], []).append(r)
    names = {"w": "n_warmup_steps", "c": "n_confirm", "h": "history"}
    for g, (options, lc) in enumerate(sorted(groups.items())):
        lc.sort(key=lambda r: r["epochs"])
        label = ", ".join(f"{names[o[0]]}={o[1:] or 'True'}" for o in options.split("/") if o) or "defaults"
        ax.errorbar([r["epochs"] for r in lc], [r["regret"] for r in lc], yerr=[r["regret_se"] for r in lc], fmt="o-",
                    color=("C3", "C8", "C9", "C7")[g % 4], capsize=2, label=f"LCPFNPruner ({label})")
        for r in lc:
            ax.annotate(r["pruner"].split("@")[1].partition("/")[0], (r["epochs"], r["regret"]), fontsize=7,
                        xytext=(4, 4), textcoords="offset points")
    for k, r in enumerate(r for r in rows if not r["pruner"].startswith("lcpfn@")):
        ax.errorbar(r["epochs"], r["regret"], yerr=r["regret_se"], fmt="s", color=f"C{k if k < 3 else k + 1}",
                    label=r["pruner"], capsize=2)
    if rows and math.isfinite(rows[0]["noise"]):
        ax.axhline(rows[0]["noise"], color="grey", ls=":", lw=1, label="curve noise")
    ax.set_xlabel("epochs used (all studies)")
    # Symlog: linear near zero (to about 10x the curve noise), logarithmic beyond, so that one
    # pruner's large regret does not flatten the others.
    noise = rows[0]["noise"] if rows and math.isfinite(rows[0]["noise"]) else 1e-3
    ax.set_yscale("symlog", linthresh=10 * noise)
    ax.set_ylim(bottom=0.0)
    ax.set_ylabel("mean final regret (metric units, symlog)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sources", nargs="+", default=list(SOURCES), choices=list(SOURCES))
    parser.add_argument("--split", default="heldout", choices=["dev", "heldout", "all"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--max-tasks", type=int, default=None, help="first N tasks of the split per source")
    parser.add_argument("--taskset-configs", type=int, default=50)
    parser.add_argument("--min-probs", type=float, nargs="+", default=[0.01, 0.05, 0.1])
    parser.add_argument("--warmups", type=int, nargs="+", default=[0], help="LCPFNPruner n_warmup_steps values")
    parser.add_argument("--confirms", type=int, nargs="+", default=[1], help="LCPFNPruner n_confirm values")
    parser.add_argument("--histories", type=int, nargs="+", default=[0], choices=[0, 1],
                        help="LCPFNPruner history values (1: P(improve) corrected by the study's completed trials)")
    parser.add_argument("--pruners", nargs="+", default=BASELINES, help=f"baselines among {BASELINES}")
    parser.add_argument("--bounds", default="study", choices=["study", "known"],
                        help="LCPFNPruner bounds: study (derived from the study, the default) or known "
                        "(the metric's known range: LCBench accuracy (0, 100), TaskSet loss (0, None))")
    parser.add_argument("--model", default="default", help="LCPFN.from_pretrained name or directory")
    parser.add_argument("--reading", default="prefix", choices=["prefix", "stretch"],
                        help="how a run shorter than the model's native length is read: prefix (LCPFN.predict) "
                        "or stretch over it (LCPFN.predict(..., reading=...))")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest for one curve)")
    parser.add_argument("--json", type=Path, default=None, help="write every study's result here")
    parser.add_argument("--plot-dir", type=Path, default=None)
    parser.add_argument("--overhead", action="store_true", help="moved: benchmarks/pruner_overhead.py")
    parser.add_argument("--from-json", type=Path, default=None, help="summarise a --json file instead of replaying")
    args = parser.parse_args()
    if args.overhead:
        raise SystemExit("--overhead moved to benchmarks/pruner_overhead.py (more storages, several processes): "
                         "python benchmarks/pruner_overhead.py --storages memory sqlite --processes 1 "
                         "--pruners median lcpfn lcpfn-low lcpfn-history")

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore")  # Wilcoxon's NaN warnings, experimental-feature warnings
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    if args.from_json is None:
        model = LCPFN.from_pretrained(args.model)
        print(f"model: {model!r} ({args.model}), torch threads: {torch.get_num_threads()}")
        if args.reading == "stretch":
            model = read_as(model, "stretch")
            print("reading: stretch (epoch t of a shorter run is model epoch t * L / max_epochs)")
    if args.from_json is not None:  # summarise and plot saved results without replaying
        results = [StudyResult(**r) for r in json.loads(args.from_json.read_text())]
        for source in args.sources:
            rows = summarize(results, source)
            if not rows:
                continue
            print_table(source, rows)
            if args.plot_dir is not None:
                args.plot_dir.mkdir(parents=True, exist_ok=True)
                n = len({(r.task, r.seed) for r in results if r.source == source and r.pruner == rows[0]["pruner"]})
                path = args.plot_dir / f"pruner_{source}_{args.split}.png"
                plot(source, rows, path, f"{source} ({args.split} tasks, {n} studies), model {args.model}")
                print(f"plot: {path}")
        return

    pruners = list(args.pruners) + [
        f"lcpfn@{p:g}" + (f"/w{w}" if w else "") + (f"/c{c}" if c > 1 else "") + ("/h" if h else "")
        for h in args.histories for c in args.confirms for w in args.warmups for p in args.min_probs
    ]
    results: list[StudyResult] = []
    for source in args.sources:
        tasks = load_tasks(source, args.data, args.split)[: args.max_tasks]
        t0 = time.time()
        for task in tasks:
            for seed in range(args.seeds):
                rng = np.random.default_rng([seed, zlib.crc32(task.name.encode())])
                n = len(task.values) if source != "taskset_dpl" else min(args.taskset_configs, len(task.values))
                order = rng.permutation(len(task.values))[:n]
                for name in pruners:
                    bounds = KNOWN_BOUNDS.get(source) if args.bounds == "known" else None
                    results.append(replay(task, order, name, seed, model, bounds))
        print(f"{source}: {len(tasks)} tasks x {args.seeds} seeds, {time.time() - t0:.0f} s")
        rows = summarize(results, source)
        print_table(source, rows)
        if args.plot_dir is not None:
            args.plot_dir.mkdir(parents=True, exist_ok=True)
            path = args.plot_dir / f"pruner_{source}_{args.split}.png"
            plot(source, rows, path, f"{source} ({args.split} tasks, {len(tasks)} x {args.seeds} seeds), model {args.model}")
            print(f"plot: {path}")
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=1))


if __name__ == "__main__":
    main()
