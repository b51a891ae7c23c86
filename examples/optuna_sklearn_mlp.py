"""Tune a scikit-learn MLP with Optuna and stop hopeless trials with LCPFNPruner.

Each trial trains an ``MLPClassifier`` on scikit-learn's digits data set one epoch at a time
(``partial_fit``), reports the validation accuracy after every epoch, and asks the pruner whether
to go on. LCPFNPruner forecasts the accuracy at the last epoch from the epochs so far and stops a
trial when P(it beats the best finished trial) < ``min_prob``. At the end the script prints how
many epochs pruning saved and, for every pruned trial, the forecast that stopped it.

Needs: ``pip install 'lcpfn[optuna]' scikit-learn``.

    python examples/optuna_sklearn_mlp.py                 # 30 trials, 40 epochs each
    python examples/optuna_sklearn_mlp.py --compare       # also run the same trials unpruned
    python examples/optuna_sklearn_mlp.py --n-confirm 2   # prune after two low checks in a row
    python examples/optuna_sklearn_mlp.py --history       # check the model on finished trials first
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import optuna
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

from lcpfn.integrations.optuna import ATTR_KEY, LCPFNPruner

MAX_EPOCHS = 40


def make_objective(seed: int):
    x, y = load_digits(return_X_y=True)
    x_train, x_valid, y_train, y_valid = train_test_split(x, y, test_size=0.3, random_state=seed, stratify=y)
    scaler = StandardScaler().fit(x_train)
    x_train, x_valid = scaler.transform(x_train), scaler.transform(x_valid)
    classes = np.unique(y)

    def objective(trial: optuna.Trial) -> float:
        clf = MLPClassifier(
            hidden_layer_sizes=(trial.suggest_int("hidden", 4, 128, log=True),),
            learning_rate_init=trial.suggest_float("learning_rate_init", 1e-5, 1e-1, log=True),
            alpha=trial.suggest_float("alpha", 1e-6, 1e-1, log=True),
            batch_size=trial.suggest_categorical("batch_size", [32, 128, 512]),
            random_state=seed,
        )
        accuracy = 0.0
        for epoch in range(1, MAX_EPOCHS + 1):
            clf.partial_fit(x_train, y_train, classes=classes)  # one pass over the training data
            accuracy = clf.score(x_valid, y_valid)
            trial.report(accuracy, epoch)
            trial.set_user_attr("epochs", epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return accuracy

    return objective


def run(pruner: optuna.pruners.BasePruner, n_trials: int, seed: int) -> optuna.Study:
    study = optuna.create_study(direction="maximize", pruner=pruner, sampler=optuna.samplers.TPESampler(seed=seed))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        study.optimize(make_objective(seed), n_trials=n_trials)
    return study


def epochs_used(study: optuna.Study) -> int:
    return sum(t.user_attrs.get("epochs", 0) for t in study.trials)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-trials", type=int, default=30)
    parser.add_argument("--min-prob", type=float, default=0.05)
    parser.add_argument("--n-confirm", type=int, default=1,
                        help="consecutive low checks before pruning (1: the paper's rule)")
    parser.add_argument("--history", action="store_true",
                        help="check the model against the study's finished trials before pruning")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--compare", action="store_true", help="also run the same study without pruning")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # A forecast is a tiny forward pass: one torch thread is fastest, and keeps torch's thread pool
    # from competing with scikit-learn's BLAS threads (on a busy 2-core machine, a 3 ms forecast
    # took over 100 ms with the default thread count).
    torch.set_num_threads(1)

    # Accuracies lie in [0, 1]: a known range, which the pruner is told (without `bounds` it derives
    # a scale from the study). With --n-confirm 2 a trial is pruned only after two checks in a row
    # found it hopeless: it costs epochs here, and spared real curves with a slow first epoch in the
    # replay of BENCHMARKS.md §7.
    pruner = LCPFNPruner(max_resource=MAX_EPOCHS, min_prob=args.min_prob, n_confirm=args.n_confirm,
                         history=args.history, bounds=(0.0, 1.0))
    t0 = time.perf_counter()
    study = run(pruner, args.n_trials, args.seed)
    seconds = time.perf_counter() - t0

    budget = args.n_trials * MAX_EPOCHS
    used = epochs_used(study)
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    print(f"{pruner!r}: {len(pruned)} of {len(study.trials)} trials pruned")
    print(f"epochs used: {used} of {budget} -> {budget - used} saved ({budget / used:.2f}x fewer), {seconds:.1f} s")
    print(f"best validation accuracy: {study.best_value:.4f} (trial {study.best_trial.number}, {study.best_params})")
    print("\nwhy trials were pruned (the forecast at the step that stopped them):")
    print("trial  step  accuracy  median forecast at last epoch  P(beat best)  best so far")
    for t in pruned:
        r = t.user_attrs[ATTR_KEY]
        if "p_improve" in r:
            print(f"{t.number:5d}  {r['step']:4d}  {t.intermediate_values[r['step']]:8.4f}  "
                  f"{r['median_final']:29.4f}  {r['p_improve']:12.4f}  {r['threshold']:11.4f}")
        else:
            print(f"{t.number:5d}  {r['step']:4d}  {r['reason']}")

    if args.compare:
        t0 = time.perf_counter()
        full = run(optuna.pruners.NopPruner(), args.n_trials, args.seed)
        print(f"\nwithout pruning: {epochs_used(full)} epochs, best accuracy {full.best_value:.4f} "
              f"({time.perf_counter() - t0:.1f} s); regret of pruning: {full.best_value - study.best_value:+.4f}")


if __name__ == "__main__":
    main()
