"""LCPFNPruner: stop an Optuna trial whose extrapolated learning curve is unlikely to win.

The rule is the one of the LC-PFN paper (Adriaensen et al. 2023, §4.3): at each check, forecast
the trial's value at the final step ``max_resource`` from the values it has reported so far, and
prune when ``P(final value better than the best completed trial's final value) < min_prob``.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from lcpfn.errors import InputError, require
from lcpfn.integrations._rule import epoch_curve, integer, number, one_torch_thread
from lcpfn.normalization import check_bounds, study_bounds

optuna = require("optuna", extra="optuna", feature="lcpfn.integrations.optuna")

from optuna.pruners import BasePruner  # noqa: E402
from optuna.study import StudyDirection  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

if TYPE_CHECKING:
    from optuna.study import Study
    from optuna.trial import FrozenTrial

    from lcpfn.predictor import LCPFN

_logger = logging.getLogger(__name__)

#: The key of the trial user attribute where every forecast-based decision is recorded.
ATTR_KEY = "lcpfn_pruner"

#: ``history=True``: the most recent COMPLETE trials whose forecasts are checked against their
#: final values, and the weight (in pseudo-trials) of the model's own P(improve) in the estimate.
_HISTORY_TRIALS = 30
_HISTORY_PRIOR = 10.0


class LCPFNPruner(BasePruner):
    """Prune trials whose forecast final value is unlikely to beat the best completed trial.

    At a check the trial's reported curve is forecast to the final step ``max_resource`` with
    :meth:`lcpfn.LCPFN.predict` (the same call a user makes), and the trial is pruned when
    ``P(final value better than the threshold) < min_prob``. The threshold is the best final value
    among the study's COMPLETE trials (its value reported at step ``max_resource`` if it reported
    one, else its objective value); while no trial has completed it is ``target``, and without a
    ``target`` nothing is pruned.

    Example:

        .. code-block:: python

            import optuna
            from lcpfn.integrations.optuna import LCPFNPruner

            study = optuna.create_study(direction="maximize", pruner=LCPFNPruner(max_resource=50))

            def objective(trial):
                ...
                for epoch in range(1, 51):
                    accuracy = train_one_epoch_and_validate()
                    trial.report(accuracy, epoch)
                    if trial.should_prune():
                        raise optuna.TrialPruned()
                return accuracy

    **Steps are epochs.** Step ``s`` is epoch ``s`` of the curve (epochs count from 1). A trial that
    reports step 0 (``for step in range(n)``) is shifted by one, so step 0 is its first epoch and the
    forecast horizon is ``max_resource + 1`` epochs. Steps may be reported in any order and with
    gaps: the curve given to the model is the reported values sorted by step, linearly interpolated
    over missing steps, and held at the first reported value before the first reported step.

    **Scale and direction.** The model forecasts increasing curves in ``[0, 1]``. The pruner passes
    ``direction`` (the study's) and ``bounds=(low, high)`` to :meth:`~lcpfn.LCPFN.predict`, so any
    metric works: losses, accuracies in %, anything. The study's scale is the gap ``d`` between its
    *start level* ``s`` (the median of the first finite value each COMPLETE trial reported; the
    trial's own first value while none has completed) and the threshold ``b``:
    ``(low, high) = (min(s, b) - d, max(s, b) + d)``, so the path from a typical start to the best
    final value fills the middle third of ``[0, 1]`` (``d = 0`` becomes ``0.1 * max(1, |b|)``).
    Outliers of other trials do not matter (a median and a best value). A side of ``bounds`` that is
    given replaces the derived one (should the known side lie beyond the other derived side, that
    side is moved to keep the derived width). Either way the bounds are then widened just enough to
    hold the trial's reported values and the threshold.

    **NaN and infinity.** A trial whose latest reported value is NaN or ±inf is pruned (a diverged
    run), once the startup, warm-up and interval rules allow a check. Earlier non-finite values are
    treated as missing steps. Non-finite values of other trials are ignored.

    **Record.** A check that finds the trial in doubt (the model's ``P(improve) < min_prob``, so
    every check that prunes) writes its forecast to the trial's user attribute ``"lcpfn_pruner"`` as
    a dict: ``step`` (the step checked), ``max_resource``, ``threshold``, ``median_final`` (the
    predicted median value at ``max_resource``, caller units), ``p_improve`` (P(final value better
    than ``threshold``)), ``below`` (consecutive checks with ``p_improve < min_prob``, this one
    included, compared with ``n_confirm``), ``pruned`` (the decision); with ``history=True``, a
    check that consulted the history also has ``p_history`` and ``n_history`` (the completed trials
    used), and ``p_improve`` is then the larger of the model's value and ``p_history``. So does the
    first check after one in doubt that finds the trial promising again (``below`` 0: the count
    starts over). Other checks write nothing: on a database or a journal file a write is synced to
    disk and would cost more than the rest of the check. Later records overwrite earlier ones, so a
    pruned trial keeps the forecast that pruned it, and a trial never in doubt has no record. A
    trial pruned for a non-finite value gets ``{"step": ..., "pruned": True, "reason": "non-finite
    value"}``.

    **Processes and threads.** The decision depends only on what the study's storage holds, never
    on state kept in the pruner, so workers in several processes sharing a storage decide alike.
    What the COMPLETE trials say (the threshold, the start level, ``"auto"``'s horizon) is cached
    under the number of COMPLETE trials in the check's read of the storage, so a trial completed
    in any process counts from the next check on. The model is loaded on first use, once, under a
    lock (safe with ``study.optimize(n_jobs=...)``). The forecast runs on one torch thread: for one
    curve more threads only add latency, a lot of it when other processes keep the cores busy. The
    setting is made for the calling thread only and restored after the forecast (torch's OpenMP
    backend, see ``torch.__config__.parallel_info()``, keeps it per thread), so the thread count
    chosen for training is left as it is.

    **Cost.** A check reads the storage once (``study.get_trials``, the read ``MedianPruner``
    makes too; warm-up and interval steps read nothing), forecasts one curve on one torch thread
    (3–7 ms of CPU time), and writes only when it finds the trial in doubt (see Record). The
    forecast is what a check costs beyond ``MedianPruner``'s. Measured with
    ``benchmarks/pruner_overhead.py`` (100 completed trials of 50 steps, checks back to back) on a
    2-core machine that other jobs kept at a load average of 7–10, the median check took 21 ms on
    sqlite with one process and 63 ms with four (``MedianPruner`` in the same run: 8 and 24 ms),
    9 and 21 ms on a journal file (0.3 and 0.4 ms), 21 and 93 ms on PostgreSQL (9 and 56 ms), and
    9 ms in memory. A check that writes its record adds the storage's synced write, 20–35 ms on
    sqlite there. With ``history=True`` a check in doubt also forecasts up to 30 completed trials
    in one batch: 83 ms median when every check of a trial is in doubt (in memory, same machine),
    6.7 ms on average per check in the LCBench replay (``benchmarks/results/pruner_default_v2.md``).
    BENCHMARKS.md ("Optuna pruner: the cost of ``should_prune``") has the figures, and those of
    the pruner before it read and wrote less.

    **A model for the run's budget.** The default model reads a run shorter than its 100 epochs
    as the start of a 100-epoch run. What its prior ties to the end of training, such as a late
    rise while the learning rate anneals, then lies beyond ``max_resource``, so a curve that is
    flat mid-run looks finished. If the learning-rate schedule spans the run, train a model for
    that budget and pass it as ``model``. It starts from the default model and learns late rises
    that end at ``max_resource``:
    ``lcpfn train --out-dir runs/b50 --init-from default --head-hidden 512 --prior extended
    --prior-setting p_late_rise=0.3 --budget 50 --curves 600000 --lr 3e-4 --min-lr 3e-4 --warmup-steps 50``
    (about 22 minutes on 2 CPU cores). On replayed LCBench studies (52-epoch cosine runs) this
    spared the late risers that the default model pruned (``benchmarks/results/pruner_budget.md``).

    Multi-objective studies are not supported (Optuna's ``should_prune`` rejects them too).

    Args:
        max_resource: The step at which a complete trial reports its final value (the last epoch).
            ``"auto"``: the largest last step among the study's COMPLETE trials (no pruning until a
            trial has completed), as in :class:`optuna.pruners.HyperbandPruner`.
        min_prob: Prune when the probability of improving on the threshold is below this.
            In ``[0, 1]``; 0 prunes only diverged (non-finite) trials.
        n_startup_trials: Pruning is disabled until this many trials have completed.
        n_warmup_steps: Pruning is disabled while the trial's last step is below this.
        interval_steps: Check every this many steps, offset by ``n_warmup_steps``; a check whose
            step was not reported happens at the next reported step (Optuna's rule).
        n_confirm: Prune only when this many consecutive checks of the trial found
            ``P(improve) < min_prob``. ``1`` is the paper's rule. ``2`` spares a trial whose
            forecast from one or two early values is wrong for a single check (a first epoch far
            below the second, a common start on real curves) at the cost of one more check per
            pruned trial; ``benchmarks/results/pruner_default.md`` measures the trade-off.
        history: Check the model against the study's own completed trials before pruning. At a
            check that would prune, each COMPLETE trial (the latest 30) is forecast from its values
            up to the same step, and P(improve) becomes the share of those forecasts whose
            P(better than the trial's actual final value) fell below the model's P(improve) — the
            chance of improving, as far as this study's curves say the model's numbers come true —
            shrunk towards the model's own value with the weight of 10 trials. It can only raise
            P(improve): a study whose curves kept rising past the forecasts spares trials the model
            alone would prune. Costs one batched forecast of the completed trials per such check.
        target: The threshold to beat while no trial has completed (e.g. the score of the model in
            production). ``None``: no pruning before a trial completes.
        bounds: Known ``(low, high)`` range of the metric (e.g. ``(0, 100)`` for an accuracy in %),
            with ``None`` for a side that is not known (``(0, None)`` for a loss): that side is
            derived from the study as described above. ``None`` (or ``"infer"``): both sides derived.
        model: An :class:`lcpfn.LCPFN`, or a name or checkpoint directory for
            :meth:`lcpfn.LCPFN.from_pretrained`. ``None``: the default shipped model. Names and
            paths are loaded lazily, at the first forecast.
    """

    def __init__(
        self,
        *,
        max_resource: int | Literal["auto"] = "auto",
        min_prob: float = 0.05,
        n_startup_trials: int = 0,
        n_warmup_steps: int = 0,
        interval_steps: int = 1,
        n_confirm: int = 1,
        history: bool = False,
        target: float | None = None,
        bounds: tuple[float | None, float | None] | Literal["infer"] | None = None,
        model: LCPFN | str | os.PathLike[str] | None = None,
    ) -> None:
        if max_resource != "auto":
            if isinstance(max_resource, bool) or not isinstance(max_resource, (int, np.integer)):
                raise InputError(f"max_resource must be an integer or 'auto' but got {max_resource!r}")
            if max_resource < 1:
                raise InputError(f"max_resource must be at least 1 but got {max_resource}")
            max_resource = int(max_resource)
        min_prob = number(min_prob, "min_prob")
        if not 0.0 <= min_prob <= 1.0:
            raise InputError(f"min_prob must be between 0 and 1 but got {min_prob}")
        n_startup_trials = integer(n_startup_trials, "n_startup_trials", minimum=0)
        n_warmup_steps = integer(n_warmup_steps, "n_warmup_steps", minimum=0)
        interval_steps = integer(interval_steps, "interval_steps", minimum=1)
        n_confirm = integer(n_confirm, "n_confirm", minimum=1)
        if not isinstance(history, (bool, np.bool_)):
            raise InputError(f"history must be True or False but got {history!r}")
        if target is not None:
            target = number(target, "target")
            if not math.isfinite(target):
                raise InputError(f"target must be finite but got {target}")
        bounds = check_bounds(bounds)  # as LCPFN.predict takes them; "infer" means: derive both sides
        if bounds == (None, None):
            bounds = None
        if model is not None and not isinstance(model, (str, os.PathLike)) and not hasattr(model, "predict"):
            raise InputError(
                f"model must be an LCPFN, a model name or a checkpoint directory, but got {model!r}"
            )

        self._max_resource = max_resource
        self._min_prob = min_prob
        self._n_startup_trials = n_startup_trials
        self._n_warmup_steps = n_warmup_steps
        self._interval_steps = interval_steps
        self._n_confirm = n_confirm
        self._history = bool(history)
        self._target = target
        self._bounds = bounds
        # A model given as an object is used as is; a name or path (or None: the default model) is
        # loaded at the first forecast into `_loaded_model`, a cache, not decision state.
        self._given_model = None if model is None or isinstance(model, (str, os.PathLike)) else model
        self._model_spec = None if self._given_model is not None else model
        self._loaded_model: LCPFN | None = None
        self._lock = threading.Lock()
        # What the study's COMPLETE trials say, keyed on them (see `_incumbent`): a cache, not state.
        self._incumbent_cache: _Incumbent | None = None

    # --- the decision ---------------------------------------------------------------------------
    def prune(self, study: Study, trial: FrozenTrial) -> bool:
        if len(study.directions) > 1:
            raise InputError(
                "LCPFNPruner supports single-objective studies only, but this study has "
                f"{len(study.directions)} objectives"
            )
        step = trial.last_step
        if step is None:
            return False
        # Warm-up and interval depend on the trial's own steps only: no storage read for them.
        if step < self._n_warmup_steps:
            return False
        if not _is_check_step(step, trial.intermediate_values, self._n_warmup_steps, self._interval_steps):
            return False

        # The check's one storage read, the call MedianPruner makes too: every trial of the study.
        # The COMPLETE ones give the threshold and the scale; the stored copy of this trial gives
        # the previous record (`trial` may be a copy cached by optuna.Trial that misses it).
        trials = study.get_trials(deepcopy=False)
        completed = [t for t in trials if t.state == TrialState.COMPLETE]
        if len(completed) < self._n_startup_trials:
            return False
        previous = _stored_record(trials, trial)

        if not math.isfinite(trial.intermediate_values[step]):
            self._record(study, trial, {"step": step, "pruned": True, "reason": "non-finite value"})
            _logger.info("trial %d pruned at step %d: non-finite value", trial.number, step)
            return True

        maximize = study.direction == StudyDirection.MAXIMIZE
        incumbent = self._incumbent(study, completed, maximize)
        max_resource = incumbent.max_resource
        if max_resource is None:
            return False  # "auto" before any trial completed with a step
        if step >= max_resource:
            return False  # the final value is in: nothing left to save

        threshold = incumbent.threshold
        if threshold is None:
            threshold = self._target
        if threshold is None:
            return False

        curve, max_epochs = epoch_curve(trial.intermediate_values, max_resource)
        known = self._bounds if self._bounds is not None else (None, None)
        # The median of one value is that value: `incumbent.start` stands for every start.
        starts = [] if incumbent.start is None else [incumbent.start]
        bounds = study_bounds(curve, threshold=threshold, starts=starts, known=known)
        with one_torch_thread():
            # the study's range is a scale, not the metric's: keep only to the known sides
            forecast = self._get_model().predict(
                curve,
                max_epochs=max_epochs,
                direction="maximize" if maximize else "minimize",
                bounds=bounds,
                keep_within=(None, None),  # untruncated: truncating to known bounds lost LCBench bests (BENCHMARKS §13)
            )
            p_improve = float(forecast.prob_improve(threshold))
            median_final = float(forecast.median()[-1])
            doubt = p_improve < self._min_prob  # the model's own verdict
            history: dict[str, Any] = {}
            if self._history and doubt:
                p_history, n_history = self._p_from_history(
                    completed, step, curve.size, max_resource, max_epochs, maximize, bounds, p_improve
                )
                history = {"p_history": p_history, "n_history": n_history}
                p_improve = max(p_improve, p_history)
        below = _checks_below(previous, step, p_improve, self._min_prob) if p_improve < self._min_prob else 0
        pruned = below >= self._n_confirm
        # A check the model finds promising writes nothing (on a database or a journal file a write
        # costs more than the rest of the check: it is synced to disk), unless the storage holds a
        # low check of this trial, whose count it must reset.
        if doubt or _below(previous) > 0:
            self._record(
                study,
                trial,
                {
                    "step": step,
                    "max_resource": max_resource,
                    "threshold": threshold,
                    "median_final": median_final,
                    "p_improve": p_improve,
                    **history,
                    "below": below,
                    "pruned": pruned,
                },
            )
        _logger.debug(
            "trial %d step %d: P(improve on %g) = %.4f, median final %g -> %s",
            trial.number, step, threshold, p_improve, median_final, "prune" if pruned else "continue",
        )
        return pruned

    def _incumbent(self, study: Study, completed: list[FrozenTrial], maximize: bool) -> _Incumbent:
        """What the study's COMPLETE trials say: the horizon, the best final value, the start level.

        A finished trial never changes, and COMPLETE trials are only ever added, so the result is
        cached under the study and the number (and last) of its COMPLETE trials in this check's
        read: a trial completed in any process changes the key at the next check.
        """
        last = completed[-1] if completed else None
        key = (
            study.study_name,
            maximize,
            len(completed),
            None if last is None else (last.number, last.datetime_complete),
        )
        cached = self._incumbent_cache  # one attribute, read and replaced whole: safe across threads
        if cached is not None and cached.key == key:
            return cached
        if self._max_resource == "auto":
            last_steps = [t.last_step for t in completed if t.last_step is not None]
            max_resource = max(last_steps) if last_steps else None
        else:
            max_resource = self._max_resource
        starts = []
        for t in completed:
            if t.intermediate_values:
                v = t.intermediate_values[min(t.intermediate_values)]
                if math.isfinite(v):
                    starts.append(v)
        incumbent = _Incumbent(
            key=key,
            max_resource=max_resource,
            threshold=None if max_resource is None else _best_final(completed, max_resource, maximize),
            start=float(np.median(starts)) if starts else None,
        )
        self._incumbent_cache = incumbent
        return incumbent

    def _p_from_history(
        self,
        completed: list[FrozenTrial],
        step: int,
        n_observed: int,
        max_resource: int,
        max_epochs: int,
        maximize: bool,
        bounds: tuple[float, float],
        p_improve: float,
    ) -> tuple[float, int]:
        """P(improve) as the study's completed trials say the model's forecasts at ``step`` came true.

        Each COMPLETE trial (the latest :data:`_HISTORY_TRIALS`) is forecast from its own values up
        to ``step``, and ``q_j`` is that forecast's P(final value better than the trial's actual
        final value). For a calibrated model ``q_j`` is uniform on ``[0, 1]``; the trial at hand
        improves on the threshold exactly when its own ``q`` is below ``p_improve``, so
        ``P(q < p_improve)`` estimated from the ``q_j`` is P(improve) corrected by the study's
        history. The estimate is shrunk towards ``p_improve`` with :data:`_HISTORY_PRIOR` pseudo-
        trials: ``(#{q_j < p} + k p) / (n + k)``. Returns it and ``n``.
        """
        curves, finals = [], []
        for t in sorted(completed, key=lambda t: t.number)[-_HISTORY_TRIALS:]:
            final = t.intermediate_values.get(max_resource, t.value)
            if final is None or not math.isfinite(final):
                continue
            prefix = {s: v for s, v in t.intermediate_values.items() if s <= step}
            if not prefix or not any(math.isfinite(v) for v in prefix.values()):
                continue
            curve, _ = epoch_curve(prefix, max_resource)
            if curve.size == n_observed:  # forecast from as many epochs as the trial at hand has
                curves.append(curve)
                finals.append(float(final))
        n = len(curves)
        if n == 0:
            return p_improve, 0
        values = np.stack(curves)
        low = min(bounds[0], float(values.min()), min(finals))
        high = max(bounds[1], float(values.max()), max(finals))
        forecast = self._get_model().predict(
            values, max_epochs=max_epochs, direction="maximize" if maximize else "minimize", bounds=(low, high),
            keep_within=(None, None),
        )
        q = np.asarray(forecast.prob_improve(np.asarray(finals)), dtype=np.float64)
        k = _HISTORY_PRIOR
        return float((np.count_nonzero(q < p_improve) + k * p_improve) / (n + k)), n

    def _record(self, study: Study, trial: FrozenTrial, record: dict[str, Any]) -> None:
        # Private storage API, as Optuna's own SuccessiveHalvingPruner uses it: a pruner gets a
        # FrozenTrial, whose set_user_attr changes only that copy, and Optuna has no public call
        # that writes an attribute of a trial by its FrozenTrial.
        if trial.state == TrialState.RUNNING:  # a finished trial cannot take attributes
            study._storage.set_trial_user_attr(trial._trial_id, ATTR_KEY, record)

    # --- the model, loaded lazily ---------------------------------------------------------------
    def _get_model(self) -> LCPFN:
        if self._given_model is not None:
            return self._given_model
        model = self._loaded_model
        if model is None:
            with self._lock:  # threads of study.optimize(n_jobs=...) load it once
                if self._loaded_model is None:
                    from lcpfn.predictor import LCPFN

                    spec = self._model_spec
                    self._loaded_model = LCPFN.from_pretrained() if spec is None else LCPFN.from_pretrained(str(spec))
                model = self._loaded_model
        return model

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_lock"]
        state["_loaded_model"] = None  # another process loads its own copy
        state["_incumbent_cache"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"LCPFNPruner(max_resource={self._max_resource!r}, min_prob={self._min_prob}, "
            f"n_startup_trials={self._n_startup_trials}, n_warmup_steps={self._n_warmup_steps}, "
            f"interval_steps={self._interval_steps}, n_confirm={self._n_confirm}, history={self._history}, "
            f"target={self._target!r}, bounds={self._bounds!r})"
        )


@dataclass(frozen=True)
class _Incumbent:
    """What a study's COMPLETE trials say, for the checks until another trial completes."""

    key: tuple[Any, ...]  # (study name, maximize, number of COMPLETE trials, (number, time) of the last)
    max_resource: int | None  # the horizon; None: "auto" and no COMPLETE trial reported a step
    threshold: float | None  # the best final value at `max_resource`; None: none is finite
    start: float | None  # the median first finite value (the start level); None: there is none


def _stored_record(trials: list[FrozenTrial], trial: FrozenTrial) -> Any:
    """The record of ``trial`` in ``trials`` (the check's read of the storage), else ``trial``'s own."""
    n = trial.number
    own = trials[n] if n < len(trials) and trials[n].number == n else next((t for t in trials if t.number == n), None)
    return (own if own is not None else trial).user_attrs.get(ATTR_KEY)


def _below(record: Any) -> int:
    """The count of consecutive low checks in a stored record (0 if it has none)."""
    below = record.get("below") if isinstance(record, dict) else None
    return below if isinstance(below, int) else 0


def _is_check_step(step: int, intermediate_values: dict[int, float], n_warmup_steps: int, interval_steps: int) -> bool:
    """Whether ``step`` is the first reported step at or after the latest scheduled check."""
    scheduled = (step - n_warmup_steps) // interval_steps * interval_steps + n_warmup_steps
    previous = max((s for s in intermediate_values if s != step), default=-1)
    return previous < scheduled


def _checks_below(previous: Any, step: int, p_improve: float, min_prob: float) -> int:
    """Consecutive checks with ``P(improve) < min_prob``, this one (such a check) included.

    Counted from the trial's previous record (in the storage, so every process counts alike). A
    check repeated at the step of the previous record (``should_prune`` called twice, or by two
    workers) replaces that record's count instead of adding to it.
    """
    before = 0
    if isinstance(previous, dict) and isinstance(previous.get("below"), int) and isinstance(previous.get("step"), int):
        before = previous["below"]
        if previous["step"] >= step:  # the same check again: what came before it
            p_previous = previous.get("p_improve")
            before = max(before - 1, 0) if isinstance(p_previous, float) and p_previous < min_prob else 0
    return before + 1


def _best_final(completed: list[FrozenTrial], max_resource: int, maximize: bool) -> float | None:
    """The best finite final value among COMPLETE trials, or ``None`` if there is none."""
    finals = []
    for t in completed:
        v = t.intermediate_values.get(max_resource)
        if v is None:
            v = t.value
        if v is not None and math.isfinite(v):
            finals.append(v)
    if not finals:
        return None
    return max(finals) if maximize else min(finals)


