"""Ray Tune integration: :class:`LCPFNScheduler`, a trial scheduler that extrapolates learning curves.

Needs the ``ray`` extra (``pip install 'lcpfn[ray]'``).
"""

from __future__ import annotations

import logging
import math
import os
import pickle
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from lcpfn.errors import InputError, require
from lcpfn.integrations._rule import (
    Finished,
    Incumbent,
    LazyModel,
    RuleOptions,
    first_value,
    forecast_check,
    incumbent,
    integer,
    is_check_step,
)

require("ray.tune", extra="ray", feature="lcpfn.integrations.ray")

from ray.tune.result import DEFAULT_METRIC  # noqa: E402
from ray.tune.schedulers import FIFOScheduler, TrialScheduler  # noqa: E402

if TYPE_CHECKING:
    from ray.tune.experiment import Trial

    from lcpfn.predictor import LCPFN

__all__ = ["LCPFNScheduler"]

_logger = logging.getLogger(__name__)


class LCPFNScheduler(FIFOScheduler):
    """Stop Ray Tune trials whose forecast final value is unlikely to beat the best completed trial.

    At each result of a trial, its reported curve of ``metric`` over ``time_attr`` is forecast to
    the final step ``max_t`` with :meth:`lcpfn.LCPFN.predict` (the same call a user makes), and
    the trial is stopped when ``P(final value better than the threshold) < min_prob``. The
    threshold is the best final value among the completed trials; while none has completed it is
    ``target``, and without a ``target`` nothing is stopped. This is the rule of
    :class:`lcpfn.integrations.optuna.LCPFNPruner`, with the same options and the same
    study-derived scale (its docstring says more on both).

    Example:

        .. code-block:: python

            from ray import tune
            from lcpfn.integrations.ray import LCPFNScheduler

            def train(config):
                for epoch in range(1, 51):
                    tune.report({"accuracy": train_one_epoch_and_validate(config)})

            tuner = tune.Tuner(
                train,
                param_space={"lr": tune.loguniform(1e-4, 1e-1)},
                tune_config=tune.TuneConfig(
                    metric="accuracy", mode="max", num_samples=50, scheduler=LCPFNScheduler(max_t=50)
                ),
            )
            results = tuner.fit()

    **Steps are epochs.** ``time_attr`` (default ``"training_iteration"``, which Tune counts from
    1 at each report) must count epochs or evaluations in whole numbers: a wall-clock attribute
    such as ``time_total_s`` is refused at the first result. A trial that reports step 0 is
    shifted by one, as in the pruner. A trial that reaches ``max_t`` is stopped there (as
    ``ASHAScheduler`` does) and counts as completed.

    **Completed trials** are those that end without being stopped by this scheduler (they return,
    reach ``max_t``, or meet a ``stop`` criterion of the run). A completed trial's final value is
    its value at ``max_t`` if it reported one there, else its last reported value. Trials that
    error, or that this scheduler stopped, never count.

    **Metric and mode** come from ``tune.TuneConfig(metric=..., mode=...)`` (Tune passes them
    through :meth:`set_search_properties`), or are given here.

    **NaN and infinity.** A trial whose latest value is NaN or ±inf is stopped (a diverged run),
    once the startup, grace and interval rules allow a check.

    **State and records.** Tune runs a scheduler in the driver process only, so the curves of the
    running trials and what the completed trials say are kept on this object. Every check that
    forecasts writes ``records[trial_id]`` (later checks of the trial replace it): a dict with
    ``step``, ``max_resource``, ``threshold``, ``median_final`` (the predicted median value at
    ``max_resource``, metric units), ``p_improve``, ``below`` (consecutive checks with
    ``p_improve < min_prob``, this one included, compared with ``n_confirm``) and ``stopped``; a
    trial stopped for a non-finite value gets ``{"step": ..., "stopped": True, "reason":
    "non-finite value"}``. Unlike the pruner, which writes only checks in doubt to a storage, every
    check is recorded (memory is cheap). :meth:`save` and :meth:`restore` keep the state across a
    resumed experiment.

    **Cost.** A check is one forward pass of the model on one curve on one torch thread (about
    4 ms on one CPU core), made in the driver while it processes the result. The model is loaded
    at the first check.

    Args:
        time_attr: The result key that counts the trial's epochs (whole numbers, increasing).
        metric: The result key of the value to forecast. ``None``: from ``TuneConfig``.
        mode: ``"max"`` or ``"min"``. ``None``: from ``TuneConfig``.
        max_t: The step at which a trial reports its final value (the last epoch); trials are
            stopped there. ``"auto"``: the largest last step among the completed trials (nothing
            is stopped until a trial has completed, and trials are not stopped at a budget).
        min_prob: Stop when the probability of improving on the threshold is below this.
            In ``[0, 1]``; 0 stops only diverged (non-finite) trials.
        grace_period: No check while the trial's step is below this (the pruner's
            ``n_warmup_steps``).
        interval_steps: Check every this many steps, offset by ``grace_period``; a check whose
            step was not reported happens at the next reported step.
        n_startup_trials: No check until this many trials have completed.
        n_confirm: Stop only when this many consecutive checks of the trial found
            ``P(improve) < min_prob``; ``2`` spares trials whose first values mislead one check.
        target: The threshold to beat while no trial has completed. ``None``: no stopping until
            a trial completes.
        bounds: Known ``(low, high)`` range of the metric (``(0, 100)`` for an accuracy in %),
            with ``None`` for an unknown side. ``None`` (or ``"infer"``): derived from the run's
            trials, as the pruner does.
        model: An :class:`lcpfn.LCPFN`, or a name or checkpoint directory for
            :meth:`lcpfn.LCPFN.from_pretrained`. ``None``: the default shipped model. Names and
            paths are loaded at the first check.
    """

    def __init__(
        self,
        *,
        time_attr: str = "training_iteration",
        metric: str | None = None,
        mode: Literal["min", "max"] | None = None,
        max_t: int | Literal["auto"] = "auto",
        min_prob: float = 0.05,
        grace_period: int = 0,
        interval_steps: int = 1,
        n_startup_trials: int = 0,
        n_confirm: int = 1,
        target: float | None = None,
        bounds: tuple[float | None, float | None] | Literal["infer"] | None = None,
        model: LCPFN | str | os.PathLike[str] | None = None,
    ) -> None:
        if not isinstance(time_attr, str):
            raise InputError(f"time_attr must be a result key (a string) but got {time_attr!r}")
        if metric is not None and not isinstance(metric, str):
            raise InputError(f"metric must be a result key (a string) or None but got {metric!r}")
        if mode not in (None, "min", "max"):
            raise InputError(f"mode must be 'min', 'max' or None but got {mode!r}")
        if max_t != "auto":
            if isinstance(max_t, bool) or not isinstance(max_t, (int, np.integer)):
                raise InputError(f"max_t must be an integer or 'auto' but got {max_t!r}")
            if max_t < 1:
                raise InputError(f"max_t must be at least 1 but got {max_t}")
            max_t = int(max_t)
        grace_period = integer(grace_period, "grace_period", minimum=0)
        self._options = RuleOptions(
            min_prob=min_prob,
            n_startup_trials=n_startup_trials,
            n_warmup_steps=grace_period,
            interval_steps=interval_steps,
            n_confirm=n_confirm,
            target=target,
            bounds=bounds,  # validated (and "infer" resolved) by RuleOptions
        )
        self._model = LazyModel(model)
        super().__init__()
        self._time_attr = time_attr
        self._metric = metric
        self._mode: str | None = mode
        self._max_t = max_t
        # The running trials: reported values by step, and consecutive low checks.
        self._curves: dict[str, dict[int, float]] = {}
        self._below: dict[str, int] = {}
        self._stopped: set[str] = set()  # trials this scheduler stopped before their end
        self._finished: list[Finished] = []  # the completed trials, in order of completion
        self._incumbent_cache: tuple[int, Incumbent] | None = None
        #: The latest check of each trial, by trial id (see the class docstring).
        self.records: dict[str, dict[str, Any]] = {}

    # --- Tune's scheduler interface -------------------------------------------------------------
    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        if self._metric and metric:
            return False
        if self._mode and mode:
            return False
        if mode not in (None, "min", "max"):
            raise InputError(f"mode must be 'min', 'max' or None but got {mode!r}")
        if metric:
            self._metric = metric
        if mode:
            self._mode = mode
        if self._metric is None and self._mode:
            self._metric = DEFAULT_METRIC  # Tune's anonymous metric, as its own schedulers do
        return True

    def on_trial_add(self, tune_controller: Any, trial: Trial) -> None:
        if not self._metric or not self._mode:
            raise InputError(
                f"LCPFNScheduler needs a metric and a mode, but got metric={self._metric!r} and "
                f"mode={self._mode!r}: pass them to LCPFNScheduler or to tune.TuneConfig"
            )

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict[str, Any]) -> str:
        if self._time_attr not in result or self._metric not in result:
            return TrialScheduler.CONTINUE  # as Tune's own schedulers: nothing to decide on
        trial_id = trial.trial_id
        if trial_id in self._stopped:
            return TrialScheduler.STOP  # a result buffered behind the one that stopped it
        step = self._step(result[self._time_attr], trial_id)
        value = _value(result[self._metric], self._metric, trial_id)
        values = self._curves.setdefault(trial_id, {})
        last = max(values, default=None)
        values[step] = value
        if last is not None and step <= last:
            # Tune sends a function trainable's last result again when it returns: not a new check.
            return TrialScheduler.CONTINUE
        if isinstance(self._max_t, int) and step >= self._max_t:
            return TrialScheduler.STOP  # the budget is reached: the trial completes (as in ASHA)
        stop = self._decide(trial_id, values, step)
        if stop:
            self._stopped.add(trial_id)
            return TrialScheduler.STOP
        return TrialScheduler.CONTINUE

    def on_trial_complete(self, tune_controller: Any, trial: Trial, result: dict[str, Any]) -> None:
        # Tune calls this for every trial that ends while running, also for those stopped here.
        trial_id = trial.trial_id
        values = self._curves.pop(trial_id, {})
        self._below.pop(trial_id, None)
        if trial_id in self._stopped:
            return
        if result and self._time_attr in result and self._metric in result:
            step = self._step(result[self._time_attr], trial_id)
            values.setdefault(step, _value(result[self._metric], self._metric, trial_id))
        if not values:
            return  # it reported nothing: it says nothing about the run
        last_step = max(values)
        final = values[self._max_t] if isinstance(self._max_t, int) and self._max_t in values else values[last_step]
        self._finished.append(
            Finished(first=first_value(values), last_step=last_step, values={last_step: final}, value=final)
        )

    def on_trial_error(self, tune_controller: Any, trial: Trial) -> None:
        self._curves.pop(trial.trial_id, None)
        self._below.pop(trial.trial_id, None)

    def on_trial_remove(self, tune_controller: Any, trial: Trial) -> None:
        self._curves.pop(trial.trial_id, None)
        self._below.pop(trial.trial_id, None)

    def debug_string(self) -> str:
        return (
            f"Using LCPFNScheduler: {len(self._stopped)} trials stopped early, "
            f"{len(self._finished)} completed."
        )

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.__getstate__(), f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.__setstate__(pickle.load(f))

    # --- the decision ---------------------------------------------------------------------------
    def _decide(self, trial_id: str, values: dict[int, float], step: int) -> bool:
        """The check at ``step`` of a running trial: ``True`` to stop it."""
        options = self._options
        if not is_check_step(step, values, options.n_warmup_steps, options.interval_steps):
            return False
        if len(self._finished) < options.n_startup_trials:
            return False
        if not math.isfinite(values[step]):
            self.records[trial_id] = {"step": step, "stopped": True, "reason": "non-finite value"}
            _logger.info("trial %s stopped at step %d: non-finite value", trial_id, step)
            return True
        maximize = self._mode == "max"
        known = self._incumbent(maximize)
        max_resource = known.max_resource
        if max_resource is None or step >= max_resource:
            return False  # "auto" before any trial completed, or the final value is in
        threshold = known.threshold if known.threshold is not None else options.target
        if threshold is None:
            return False
        check = forecast_check(
            self._model.get(),
            values,
            step=step,
            max_resource=max_resource,
            threshold=threshold,
            start=known.start,
            maximize=maximize,
            known=options.bounds if options.bounds is not None else (None, None),
        )
        below = self._below.get(trial_id, 0) + 1 if check.p_improve < options.min_prob else 0
        self._below[trial_id] = below
        stop = below >= options.n_confirm
        record = check.record(below=below, pruned=stop)
        record["stopped"] = record.pop("pruned")
        self.records[trial_id] = record
        _logger.debug(
            "trial %s step %d: P(improve on %g) = %.4f, median final %g -> %s",
            trial_id, step, threshold, check.p_improve, check.median_final, "stop" if stop else "continue",
        )
        return stop

    def _incumbent(self, maximize: bool) -> Incumbent:
        """What the completed trials say; cached until another trial completes."""
        cached = self._incumbent_cache
        if cached is not None and cached[0] == len(self._finished):
            return cached[1]
        known = incumbent(self._finished, max_resource=self._max_t, maximize=maximize)
        self._incumbent_cache = (len(self._finished), known)
        return known

    def _step(self, raw: Any, trial_id: str) -> int:
        try:
            step = float(raw)
        except (TypeError, ValueError):
            step = math.nan
        if not (math.isfinite(step) and step >= 0 and step == round(step)):
            raise InputError(
                f"time_attr {self._time_attr!r} must count epochs in whole numbers, but trial {trial_id} "
                f"reported {raw!r}"
            )
        return int(step)

    # --- pickling (Tune pickles its scheduler with the experiment's state) ------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_incumbent_cache"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __repr__(self) -> str:
        o = self._options
        return (
            f"LCPFNScheduler(time_attr={self._time_attr!r}, metric={self._metric!r}, mode={self._mode!r}, "
            f"max_t={self._max_t!r}, min_prob={o.min_prob}, grace_period={o.n_warmup_steps}, "
            f"interval_steps={o.interval_steps}, n_startup_trials={o.n_startup_trials}, "
            f"n_confirm={o.n_confirm}, target={o.target!r}, bounds={o.bounds!r})"
        )


def _value(raw: Any, metric: str, trial_id: str) -> float:
    try:
        return float(raw)
    except (TypeError, ValueError):
        raise InputError(f"metric {metric!r} must be a number, but trial {trial_id} reported {raw!r}") from None
