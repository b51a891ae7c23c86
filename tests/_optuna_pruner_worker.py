"""A worker process for the distributed LCPFNPruner tests (tests/test_optuna_pruner.py).

``--storage`` is an RDB URL (sqlite:///..., postgresql+psycopg2://...) or ``journal:<path>`` for a
JournalStorage on a file. The worker loads the existing study ``--study`` and runs ``--n-trials``
trials of a synthetic training loop, pruned by LCPFNPruner with the default model.
"""

from __future__ import annotations

import argparse
import math

import optuna

from lcpfn.integrations.optuna import LCPFNPruner

MAX_EPOCH = 12


def make_storage(spec: str):
    if spec.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        return JournalStorage(JournalFileBackend(spec[len("journal:"):]))
    if spec.startswith("sqlite"):
        # Concurrent writers wait for sqlite's lock instead of failing after the default 5 s.
        return optuna.storages.RDBStorage(spec, engine_kwargs={"connect_args": {"timeout": 60}})
    return optuna.storages.RDBStorage(spec)


def _objective(trial: optuna.Trial) -> float:
    # Accuracy-like curves that saturate at `ceiling`; some configurations are clearly worse.
    ceiling = trial.suggest_float("ceiling", 0.2, 0.95)
    rate = trial.suggest_float("rate", 0.2, 1.0)
    value = float("nan")
    for epoch in range(1, MAX_EPOCH + 1):
        value = ceiling * (1.0 - math.exp(-rate * epoch)) + 0.003 * math.sin(7.0 * epoch + 10 * ceiling)
        trial.report(value, epoch)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return value


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--storage", required=True)
    parser.add_argument("--study", required=True)
    parser.add_argument("--n-trials", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = make_storage(args.storage)
    study = optuna.load_study(
        study_name=args.study,
        storage=storage,
        pruner=LCPFNPruner(max_resource=MAX_EPOCH, n_warmup_steps=2),  # the default model
        sampler=optuna.samplers.RandomSampler(seed=args.seed),
    )
    study.optimize(_objective, n_trials=args.n_trials, catch=())


if __name__ == "__main__":
    main()
