"""Replay real learning curves as Ray Tune trials: LCPFNScheduler against ASHA and median stopping.

The protocol is ``pruner_replay.py``'s (the Optuna replay): each study is one task of a source in
``../shared/data``, its configurations' curves in the same random order (same seeds), run one at
a time; a study costs the epochs reported, and its regret is how much worse the best final value
among its completed trials is than the best final value of all its curves.

How a study is run without a Ray cluster: a simulated trial runner makes the calls Tune's
controller (``ray.tune.execution.tune_controller``) makes on a scheduler, on Ray's own ``Trial``
objects (``Trial(..., stub=True)``) and Ray's own schedulers:

- ``scheduler.set_search_properties(metric, mode)`` once (what ``tune.TuneConfig`` passes);
- ``on_trial_add`` when a trial is created;
- ``on_trial_result(runner, trial, {time_attr: step, metric: value})`` after each reported epoch;
  ``STOP`` ends the trial (``PAUSE``, which a rule may return while other trials are pending, does
  not happen: no trial is pending);
- ``on_trial_complete(runner, trial, last_result)`` when a trial ends, stopped or not (Tune calls it
  for both).

``time_attr`` is the curve's own step (LCBench epochs 1..52, TaskSet evaluations 0..50), the
steps the Optuna replay reports, and ``max_t`` its last step, so a trial is *completed* when it
reported its last step. With the same options LCPFNScheduler makes the Optuna pruner's decisions,
so its rows repeat the Optuna replay's to the last digit.

Schedulers (``--schedulers``, and ``--settings`` for LCPFNScheduler):
  fifo              FIFOScheduler: no stopping (the reference for "fewer epochs")
  asha, asha3       ASHAScheduler(max_t=max_t, grace_period=1, reduction_factor=4 or 3)
  median, median5   MedianStoppingRule(grace_period=1 or 5, min_samples_required=3)
  lcpfn@P[/gN][/cK][/k]  LCPFNScheduler(max_t=max_t, min_prob=P, grace_period=N, n_confirm=K);
                    /k: the metric's known range as bounds (LCBench (0, 100), TaskSet (0, None))

Usage:
  python benchmarks/ray_replay.py --sources lcbench_surrogate taskset_dpl --split heldout --seeds 3
  python benchmarks/ray_replay.py --sources taskset_dpl --max-tasks 1 --seeds 1     # a quick look
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import time
import warnings
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no Ray runtime is started; nothing is sent

from common import DATA, KNOWN_BOUNDS, SOURCES, Task, load_tasks  # noqa: E402
from ray.tune.experiment import Trial  # noqa: E402
from ray.tune.schedulers import (  # noqa: E402
    AsyncHyperBandScheduler,
    FIFOScheduler,
    MedianStoppingRule,
    TrialScheduler,
)

from lcpfn import LCPFN  # noqa: E402
from lcpfn.integrations.ray import LCPFNScheduler  # noqa: E402

BASELINES = ["fifo", "asha", "asha3", "median", "median5"]
SETTINGS = ["lcpfn@0.05", "lcpfn@0.05/c2", "lcpfn@0.1/c2", "lcpfn@0.05/g5/c2", "lcpfn@0.1/g5/c2",
            "lcpfn@0.05/c2/k", "lcpfn@0.1/c2/k"]
TIME_ATTR = "step"


@dataclass(frozen=True)
class StudyResult:
    source: str
    task: str
    seed: int
    scheduler: str
    n_trials: int
    epochs: int  # results reported, summed over trials
    n_stopped: int  # trials stopped before their last step
    oracle: float  # best finite final value among the study's curves
    found: float  # best finite final value among completed trials
    median_final: float  # median finite final value among the study's curves
    regret: float  # |found - oracle|, metric units
    seconds_per_result: float  # mean wall time of on_trial_result


class _Runner:
    """What a scheduler may ask Tune's controller: the trials (none other is live or pending here)."""

    def get_trials(self) -> list[Trial]:
        return []

    def get_live_trials(self) -> list[Trial]:
        return []


def make_scheduler(name: str, *, max_t: int, model: Any, source: str) -> TrialScheduler:
    if name.startswith("lcpfn@"):
        min_prob, *options = name[len("lcpfn@"):].split("/")
        opts = {o[0]: int(o[1:] or 1) for o in options}
        return LCPFNScheduler(time_attr=TIME_ATTR, max_t=max_t, min_prob=float(min_prob),
                              grace_period=opts.get("g", 0), n_confirm=opts.get("c", 1),
                              bounds=KNOWN_BOUNDS[source] if opts.get("k") else None, model=model)
    if name == "fifo":
        return FIFOScheduler()
    if name in ("asha", "asha3"):
        return AsyncHyperBandScheduler(time_attr=TIME_ATTR, max_t=max_t, grace_period=1,
                                       reduction_factor=4 if name == "asha" else 3)
    if name in ("median", "median5"):
        return MedianStoppingRule(time_attr=TIME_ATTR, grace_period=1 if name == "median" else 5,
                                  min_samples_required=3)
    raise SystemExit(f"unknown scheduler {name!r}")


def replay(task: Task, order: np.ndarray, name: str, seed: int, model: Any) -> StudyResult:
    maximize = task.direction == "maximize"
    metric = "value"
    scheduler = make_scheduler(name, max_t=int(task.steps[-1]), model=model, source=task.source)
    scheduler.set_search_properties(metric, "max" if maximize else "min")
    runner = _Runner()
    epochs = n_stopped = n_results = 0
    seconds = 0.0
    finals: list[float] = []
    for i in order:
        trial = Trial("__replay", stub=True, config={"curve": int(i)})
        scheduler.on_trial_add(runner, trial)  # type: ignore[arg-type]
        trial.set_status(Trial.RUNNING)
        result: dict[str, Any] = {}
        stopped_early = False
        for k, (step, value) in enumerate(zip(task.steps, task.values[i])):
            result = {TIME_ATTR: int(step), "training_iteration": k + 1, metric: float(value)}
            epochs += 1
            t0 = time.perf_counter()
            decision = scheduler.on_trial_result(runner, trial, dict(result))  # type: ignore[arg-type]
            seconds += time.perf_counter() - t0
            n_results += 1
            if decision == TrialScheduler.STOP:
                stopped_early = k < len(task.steps) - 1
                break
        scheduler.on_trial_complete(runner, trial, dict(result))  # type: ignore[arg-type]
        trial.set_status(Trial.TERMINATED)
        if stopped_early:
            n_stopped += 1
        elif math.isfinite(task.values[i, -1]):
            finals.append(float(task.values[i, -1]))
    all_finals = task.values[order, -1]
    finite = all_finals[np.isfinite(all_finals)]
    oracle = float(finite.max() if maximize else finite.min())
    worst = float(finite.min() if maximize else finite.max())
    found = (max(finals) if maximize else min(finals)) if finals else worst
    return StudyResult(
        source=task.source, task=task.name, seed=seed, scheduler=name, n_trials=len(order), epochs=epochs,
        n_stopped=n_stopped, oracle=oracle, found=found, median_final=float(np.median(finite)),
        regret=abs(found - oracle), seconds_per_result=seconds / max(n_results, 1),
    )


def summarize(results: list[StudyResult], source: str) -> list[dict]:
    by_name: dict[str, list[StudyResult]] = {}
    for r in results:
        if r.source == source:
            by_name.setdefault(r.scheduler, []).append(r)
    fifo = {(r.task, r.seed): r for r in by_name.get("fifo", [])}
    rows = []
    for name, rs in by_name.items():
        epochs = sum(r.epochs for r in rs)
        fifo_epochs = sum(fifo[(r.task, r.seed)].epochs for r in rs) if fifo else math.nan
        regrets = np.array([r.regret for r in rs])
        rel = np.array([r.regret / abs(r.median_final - r.oracle) if r.median_final != r.oracle else 0.0 for r in rs])
        rows.append(dict(
            scheduler=name, studies=len(rs), epochs=epochs, speedup=fifo_epochs / epochs,
            regret=float(regrets.mean()),
            regret_se=float(regrets.std(ddof=1) / math.sqrt(len(rs))) if len(rs) > 1 else math.nan,
            regret_rel=float(rel.mean()), kept=int(np.sum(regrets == 0.0)),
            ms_per_result=1000 * float(np.mean([r.seconds_per_result for r in rs])),
        ))
    return rows


def print_table(source: str, rows: list[dict]) -> None:
    print(f"\n### {source}\n")
    print("| scheduler | studies | epochs | fewer epochs than fifo | mean regret (± s.e.) | regret / (best − median) "
          "| best kept | ms / on_trial_result |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['scheduler']} | {r['studies']} | {r['epochs']} | {r['speedup']:.2f}× "
              f"| {r['regret']:.4g} ± {r['regret_se']:.2g} | {r['regret_rel']:.3f} "
              f"| {r['kept']} of {r['studies']} ({100 * r['kept'] / r['studies']:.0f} %) | {r['ms_per_result']:.2f} |")
    baselines = [r for r in rows if not r["scheduler"].startswith("lcpfn@") and r["scheduler"] != "fifo"]
    for r in rows:
        if not r["scheduler"].startswith("lcpfn@"):
            continue
        by = [b["scheduler"] for b in baselines if b["epochs"] <= r["epochs"] and b["regret"] <= r["regret"]
              and (b["epochs"] < r["epochs"] or b["regret"] < r["regret"])]
        goal = r["speedup"] >= 3.0 and r["kept"] >= 0.95 * r["studies"]
        print(f"- {r['scheduler']}: {'dominated by ' + ', '.join(by) if by else 'not dominated'}; "
              f"goal (>= 3x, best kept in >= 95 %) {'met' if goal else 'not met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sources", nargs="+", default=list(SOURCES), choices=list(SOURCES))
    parser.add_argument("--split", default="heldout", choices=["dev", "heldout", "all"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--max-tasks", type=int, default=None, help="first N tasks of the split per source")
    parser.add_argument("--taskset-configs", type=int, default=50)
    parser.add_argument("--schedulers", nargs="+", default=BASELINES, help=f"baselines among {BASELINES}")
    parser.add_argument("--settings", nargs="+", default=SETTINGS,
                        help="LCPFNScheduler settings, lcpfn@P[/gN][/cK][/k]")
    parser.add_argument("--model", default="default", help="LCPFN.from_pretrained name or directory")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest for one curve)")
    parser.add_argument("--json", type=Path, default=None, help="write every study's result here")
    parser.add_argument("--from-json", type=Path, nargs="+", default=None, help="summarise --json files instead")
    args = parser.parse_args()

    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    if args.from_json is not None:
        results = [StudyResult(**r) for path in args.from_json for r in json.loads(path.read_text())]
        for source in args.sources:
            rows = summarize(results, source)
            if rows:
                print_table(source, rows)
        return

    model = LCPFN.from_pretrained(args.model)
    print(f"model: {args.model}, torch threads: {torch.get_num_threads()}")
    names = list(args.schedulers) + list(args.settings)
    results: list[StudyResult] = []
    for source in args.sources:
        tasks = load_tasks(source, args.data, args.split)[: args.max_tasks]
        t0 = time.time()
        for task in tasks:
            for seed in range(args.seeds):
                rng = np.random.default_rng([seed, zlib.crc32(task.name.encode())])  # pruner_replay's orders
                n = len(task.values) if source != "taskset_dpl" else min(args.taskset_configs, len(task.values))
                order = rng.permutation(len(task.values))[:n]
                for name in names:
                    np.random.seed(seed)  # ASHA draws a bracket per trial (one bracket here: no effect)
                    results.append(replay(task, order, name, seed, model))
            if args.json is not None:  # partial results survive an interrupted run
                args.json.write_text(json.dumps([asdict(r) for r in results], indent=1))
        print(f"{source}: {len(tasks)} tasks x {args.seeds} seeds, {time.time() - t0:.0f} s")
        print_table(source, summarize(results, source))
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=1))


if __name__ == "__main__":
    main()
