"""Time ``trial.should_prune()`` with LCPFNPruner against Optuna's MedianPruner in the same run.

A study is seeded with ``--completed`` COMPLETE trials of ``--steps`` steps (saturating curves,
as an accuracy). Then ``--processes`` worker processes, each with one torch thread
(``--torch-threads``), its own storage object and the pruner, run ``--trials`` trials each at the
same time. A trial reports a flat 0.99 at steps ``1..steps-1`` (better than every seeded curve, so
no pruner stops it), calls ``should_prune()`` after each report, and ends COMPLETE with objective
0.5 (the study's best final value stays, its number of completed trials grows). Each
``should_prune()`` is timed: wall time, and the worker's CPU time (the rest is waiting for the
storage's locks, the disk or a core).

Each (storage, processes) cell runs every pruner on a fresh study of its own, ``--rounds``
times, the order reversed every round so that the pruners share the machine's load; the ratios
are each pruner's figure over MedianPruner's in the same cell.

Storages: ``sqlite`` (a file; RDBStorage with a 60 s lock timeout), ``journal`` (JournalStorage
on a JournalFileBackend file), ``postgres`` (``$LCPFN_TEST_POSTGRES_URL``, else the server that
``scripts/setup-postgres.sh`` sets up), ``memory`` (InMemoryStorage: one process only).

Pruners: ``median`` (``MedianPruner()``), ``lcpfn`` (``LCPFNPruner(max_resource=steps)``, default
model); worst cases, where every check finds the trial in doubt but none prunes (``min_prob=1``,
an ``n_confirm`` no trial reaches): ``lcpfn-low`` (each check writes its record) and
``lcpfn-history`` (also ``history=True``: each check forecasts the completed trials too).

Usage:
  python benchmarks/pruner_overhead.py --storages sqlite journal postgres --processes 1 4
  python benchmarks/pruner_overhead.py --storages memory sqlite --processes 1 \\
      --pruners median lcpfn lcpfn-low lcpfn-history
  python benchmarks/pruner_overhead.py --storages sqlite --processes 4 --epoch-ms 50  # training between checks
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import os
import platform
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np

POSTGRES_URL = os.environ.get(
    "LCPFN_TEST_POSTGRES_URL", "postgresql+psycopg2://lcpfn:lcpfn@127.0.0.1:5432/lcpfn_test"
)
PRUNERS = ["median", "lcpfn", "lcpfn-low", "lcpfn-history"]


@dataclass(frozen=True)
class Task:
    """One study timed by one worker: what the worker needs to load (or, in memory, build) it."""

    storage: str  # "memory", an RDB URL or "journal:<path>"
    study_name: str
    pruner: str
    n_processes: int  # workers timing this study at the same time
    n_trials: int
    completed: int  # trials to seed (memory only: other storages are seeded by the main process)
    steps: int
    seed: int
    epoch_s: float


def make_storage(spec: str) -> Any:
    import optuna

    if spec.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        return JournalStorage(JournalFileBackend(spec[len("journal:"):]))
    if spec.startswith("sqlite"):
        # Concurrent writers wait for sqlite's lock instead of failing after the default 5 s.
        return optuna.storages.RDBStorage(spec, engine_kwargs={"connect_args": {"timeout": 60}})
    return optuna.storages.RDBStorage(spec)


def make_pruner(name: str, *, steps: int, model: Any) -> Any:
    import optuna

    from lcpfn.integrations.optuna import LCPFNPruner

    if name == "median":
        return optuna.pruners.MedianPruner()
    if name == "lcpfn":
        return LCPFNPruner(max_resource=steps, model=model)
    if name in ("lcpfn-low", "lcpfn-history"):
        return LCPFNPruner(max_resource=steps, min_prob=1.0, n_confirm=10**6, history=name == "lcpfn-history",
                           model=model)
    raise SystemExit(f"unknown pruner {name!r}; choose from {PRUNERS}")


def seed_study(study: Any, *, completed: int, steps: int, seed: int) -> None:
    """Add ``completed`` COMPLETE trials of saturating curves with noise to ``study``."""
    import optuna

    rng = np.random.default_rng(seed)
    trials = []
    for _ in range(completed):
        c, r = rng.uniform(0.5, 0.95), rng.uniform(0.05, 0.5)
        values = {s: c * (1 - math.exp(-r * s)) + 0.01 * float(rng.standard_normal()) for s in range(1, steps + 1)}
        trials.append(optuna.trial.create_trial(value=c, intermediate_values=values))
    study.add_trials(trials)


def worker(rank: int, tasks: Any, results: Any, barriers: dict[int, Any], model_name: str, threads: int) -> None:
    """Time the checks of each task sent to this worker; send back (rank, wall, cpu) in seconds."""
    import optuna
    import torch

    from lcpfn import LCPFN

    if threads > 0:
        torch.set_num_threads(threads)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    model = LCPFN.from_pretrained(model_name)
    while (task := tasks.get()) is not None:
        pruner = make_pruner(task.pruner, steps=task.steps, model=model)
        sampler = optuna.samplers.RandomSampler(seed=rank)
        if task.storage == "memory":
            study = optuna.create_study(direction="maximize", pruner=pruner, sampler=sampler)
            seed_study(study, completed=task.completed, steps=task.steps, seed=task.seed)
        else:
            study = optuna.load_study(study_name=task.study_name, storage=make_storage(task.storage), pruner=pruner,
                                      sampler=sampler)
        barriers[task.n_processes].wait()
        wall, cpu = [], []
        for _ in range(task.n_trials):
            trial = study.ask()
            for step in range(1, task.steps):
                trial.report(0.99, step)
                if task.epoch_s:
                    time.sleep(task.epoch_s)  # an epoch of training that does not use these cores
                t0, c0 = time.perf_counter(), time.process_time()
                pruned = trial.should_prune()
                wall.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
                if pruned:
                    raise RuntimeError(f"{task.pruner} pruned a trial better than every completed one")
            study.tell(trial, 0.5)
        results.put((rank, wall, cpu))


def machine() -> str:
    model = platform.processor() or "?"
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = next(line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        pass
    return f"{model}, {os.cpu_count()} CPUs"


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--storages", nargs="+", default=["sqlite", "journal", "postgres"],
                        choices=["memory", "sqlite", "journal", "postgres"])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--pruners", nargs="+", default=["median", "lcpfn"], choices=PRUNERS)
    parser.add_argument("--completed", type=int, default=100, help="COMPLETE trials in the study before timing")
    parser.add_argument("--steps", type=int, default=50, help="steps of a trial (max_resource)")
    parser.add_argument("--trials", type=int, default=3, help="timed trials per process (steps - 1 checks each)")
    parser.add_argument("--rounds", type=int, default=2, help="fresh studies per pruner and cell, order alternating")
    parser.add_argument("--epoch-ms", type=float, default=0.0,
                        help="sleep this long before each check (training elsewhere); 0: checks back to back")
    parser.add_argument("--model", default="default")
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="torch.set_num_threads in each worker; 0: torch's default (one per core)")
    args = parser.parse_args()
    if "memory" in args.storages and args.processes != [1]:
        parser.error("memory storage is not shared between processes: use it with --processes 1")

    import optuna
    import torch

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    print(f"machine: {machine()}; load average before: {load()}")
    print(f"python {platform.python_version()}, torch {torch.__version__}, optuna {optuna.__version__}; "
          f"{args.completed} completed trials of {args.steps} steps; {args.trials} timed trials per process; "
          f"{args.rounds} rounds; epoch {args.epoch_ms:g} ms between checks; "
          f"torch threads per worker: {args.torch_threads or 'default'}")

    ctx = mp.get_context("spawn")
    n_workers = max(args.processes)
    barriers = {p: ctx.Barrier(p) for p in set(args.processes)}
    queues = [ctx.Queue() for _ in range(n_workers)]
    results = ctx.Queue()
    procs = [ctx.Process(target=worker, daemon=True,
                         args=(k, queues[k], results, barriers, args.model, args.torch_threads))
             for k in range(n_workers)]
    for p in procs:
        p.start()

    tmp = tempfile.TemporaryDirectory()
    rows = []
    try:
        for storage in args.storages:
            for n_processes in args.processes:
                wall: dict[str, list[float]] = {name: [] for name in args.pruners}
                cpu: dict[str, list[float]] = {name: [] for name in args.pruners}
                for r in range(args.rounds):
                    for name in args.pruners if r % 2 == 0 else args.pruners[::-1]:
                        study_name = f"overhead-{uuid.uuid4().hex[:8]}"
                        spec = {
                            "memory": "memory",
                            "sqlite": f"sqlite:///{tmp.name}/{study_name}.db",
                            "journal": f"journal:{tmp.name}/{study_name}.log",
                            "postgres": POSTGRES_URL,
                        }[storage]
                        if storage != "memory":
                            study = optuna.create_study(study_name=study_name, storage=make_storage(spec),
                                                        direction="maximize")
                            seed_study(study, completed=args.completed, steps=args.steps, seed=r)
                        task = Task(spec, study_name, name, n_processes, args.trials, args.completed, args.steps,
                                    seed=r, epoch_s=args.epoch_ms / 1000)
                        for q in queues[:n_processes]:
                            q.put(task)
                        for _ in range(n_processes):
                            _, w, c = results.get()
                            wall[name] += w
                            cpu[name] += c
                        if storage == "postgres":
                            optuna.delete_study(study_name=study_name, storage=make_storage(spec))
                for name in args.pruners:
                    w, c = 1000 * np.array(wall[name]), 1000 * np.array(cpu[name])
                    row = dict(storage=storage, processes=n_processes, pruner=name, checks=len(w),
                               median=float(np.median(w)), p95=float(np.percentile(w, 95)), cpu=float(np.median(c)))
                    if "median" in wall:
                        base = 1000 * np.array(wall["median"])
                        row["ratio_median"] = row["median"] / float(np.median(base))
                        row["ratio_p95"] = row["p95"] / float(np.percentile(base, 95))
                    rows.append(row)
                    print(f"{storage} x{n_processes} {name}: {row['checks']} checks, median {row['median']:.1f} ms, "
                          f"p95 {row['p95']:.1f} ms, CPU median {row['cpu']:.1f} ms", flush=True)
    finally:
        for q in queues:
            q.put(None)
        for p in procs:
            p.join(timeout=30)
        tmp.cleanup()

    print(f"\nload average after: {load()}\n")
    print("| storage | processes | pruner | checks | median ms | p95 ms | CPU median ms | median / MedianPruner "
          "| p95 / MedianPruner |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        ratios = f"{row['ratio_median']:.2f}× | {row['ratio_p95']:.2f}×" if "ratio_median" in row else "– | –"
        print(f"| {row['storage']} | {row['processes']} | {row['pruner']} | {row['checks']} | {row['median']:.1f} "
              f"| {row['p95']:.1f} | {row['cpu']:.1f} | {ratios} |")


if __name__ == "__main__":
    main()
