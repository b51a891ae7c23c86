"""LCPFNScheduler: its decision through Ray Tune's scheduler interface, and a real Tune run end to end.

The unit tests call the scheduler the way Tune's controller does (``on_trial_add``,
``on_trial_result`` for each result, ``on_trial_complete`` when a trial ends, also after a STOP)
with Ray's own ``Trial`` objects (``stub=True``: no trainable, no Ray runtime). Most use
`_GaussModel`, a stand-in with `LCPFN.predict`'s signature whose forecast is a normal
distribution in model space centred on the last observed value, so P(improve) is computed by hand
(the same numbers as the Optuna pruner's tests: the rule is the same). The end-to-end test starts a
local Ray runtime (2 CPUs, no dashboard) and runs a small Tune experiment with the shipped model.
"""

from __future__ import annotations

import importlib
import math
import pickle
import sys
import time

import numpy as np
import pytest

pytest.importorskip("ray.tune")
norm = pytest.importorskip("scipy.stats").norm

from ray.tune.experiment import Trial  # noqa: E402
from ray.tune.schedulers import TrialScheduler  # noqa: E402

from lcpfn.errors import InputError, MissingDependencyError  # noqa: E402
from lcpfn.forecast import Forecast, Predictor  # noqa: E402
from lcpfn.integrations.ray import LCPFNScheduler  # noqa: E402

STOP, CONTINUE = TrialScheduler.STOP, TrialScheduler.CONTINUE
SIGMA = 0.1  # model-space standard deviation of _GaussModel's forecast


class _GaussForecast(Forecast):
    def __init__(self, mu: np.ndarray, **kwargs) -> None:
        super().__init__(**kwargs)
        self._mu = mu  # (n,)

    def _z_quantile(self, p):
        return np.broadcast_to(self._mu[:, None] + SIGMA * norm.ppf(p), (self.n_curves, len(self.epochs))).copy()

    def _z_cdf(self, z, h):
        return norm.cdf((z - self._mu[:, None]) / SIGMA)

    def _z_log_prob(self, z, h):
        return norm.logpdf((z - self._mu[:, None]) / SIGMA) - math.log(SIGMA)

    def _z_mean(self):
        return self._z_quantile(0.5)


class _GaussModel(Predictor):
    """`LCPFN.predict`'s contract; forecast: N(last observed value, SIGMA) in model space."""

    native_length = 100

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def _forecast(self, batch):
        self.calls.append(dict(curve=batch.y.copy(), max_epochs=batch.max_epochs, direction=batch.direction,
                               bounds=batch.bounds))
        return _GaussForecast(
            batch.z[:, -1],
            epochs=np.arange(batch.y.shape[1] + 1, batch.max_epochs + 1),
            observed=batch.y,
            transform=batch.transform,
            direction=batch.direction,
            squeeze=batch.squeeze,
        )


def _p_gauss(z_now: float, z_threshold: float, *, truncated: bool = False) -> float:
    """P(Z > z_threshold) for Z ~ N(z_now, SIGMA), model space. The study-derived range is only a
    scale, so the forecast is untruncated; with both sides of the metric's range known (they map to
    [0, 1]) it is ``truncated`` there and renormalised."""
    if not truncated:
        return float(norm.sf((z_threshold - z_now) / SIGMA))
    lo, hi, t = ((z - z_now) / SIGMA for z in (0.0, 1.0, z_threshold))
    return float((norm.cdf(hi) - norm.cdf(t)) / (norm.cdf(hi) - norm.cdf(lo)))


def _scheduler(mode: str = "max", **kwargs) -> LCPFNScheduler:
    kwargs.setdefault("model", _GaussModel())
    scheduler = LCPFNScheduler(**kwargs)
    assert scheduler.set_search_properties("acc", mode)  # what tune.TuneConfig(metric=, mode=) does
    return scheduler


def _trial(scheduler: LCPFNScheduler) -> Trial:
    trial = Trial("__fake", stub=True)
    scheduler.on_trial_add(None, trial)
    trial.set_status(Trial.RUNNING)
    return trial


def _report(scheduler: LCPFNScheduler, trial: Trial, step: int, value: float, **extra) -> str:
    result = {"training_iteration": step, "acc": value, **extra}
    return scheduler.on_trial_result(None, trial, result)


def _run(scheduler: LCPFNScheduler, values: dict[int, float]) -> tuple[Trial, list[str]]:
    """One trial reporting ``values`` until the scheduler stops it; then ended as Tune ends it."""
    trial = _trial(scheduler)
    decisions = []
    for step, value in values.items():
        decisions.append(_report(scheduler, trial, step, value))
        if decisions[-1] == STOP:
            break
    last = list(values.items())[len(decisions) - 1]
    # Tune calls on_trial_complete for every trial that ends while running, stopped here or not.
    scheduler.on_trial_complete(None, trial, {"training_iteration": last[0], "acc": last[1]})
    trial.set_status(Trial.TERMINATED)
    return trial, decisions


# --- constructor -----------------------------------------------------------------------------
def test__scheduler__is_a_fifo_scheduler_with_the_pruners_defaults():
    from ray.tune.schedulers import FIFOScheduler

    scheduler = LCPFNScheduler(max_t=50)
    assert isinstance(scheduler, FIFOScheduler)
    assert repr(scheduler) == (
        "LCPFNScheduler(time_attr='training_iteration', metric=None, mode=None, max_t=50, min_prob=0.05, "
        "grace_period=0, interval_steps=1, n_startup_trials=0, n_confirm=1, target=None, bounds=None)"
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(max_t=0), "max_t must be at least 1 but got 0"),
        (dict(max_t="50"), "max_t must be an integer or 'auto' but got '50'"),
        (dict(max_t=2.5), "max_t must be an integer or 'auto' but got 2.5"),
        (dict(mode="maximize"), "mode must be 'min', 'max' or None but got 'maximize'"),
        (dict(metric=3), "metric must be a result key (a string) or None but got 3"),
        (dict(time_attr=None), "time_attr must be a result key (a string) but got None"),
        (dict(min_prob=1.5), "min_prob must be between 0 and 1 but got 1.5"),
        (dict(min_prob="x"), "min_prob must be a number but got 'x'"),
        (dict(grace_period=-1), "grace_period must be at least 0 but got -1"),
        (dict(grace_period=1.5), "grace_period must be an integer but got 1.5"),
        (dict(interval_steps=0), "interval_steps must be at least 1 but got 0"),
        (dict(n_startup_trials=-1), "n_startup_trials must be at least 0 but got -1"),
        (dict(n_confirm=True), "n_confirm must be an integer but got True"),
        (dict(target=float("nan")), "target must be finite but got nan"),
        (dict(bounds=(1.0, 0.0)), "bounds must be finite with low < high, but got (1.0, 0.0)"),
        (dict(model=42), "model must be an LCPFN, a model name or a checkpoint directory, but got 42"),
    ],
)
def test__scheduler__rejects_bad_arguments_naming_them(kwargs, message):
    with pytest.raises(InputError) as info:
        LCPFNScheduler(**{"max_t": 10, **kwargs})
    assert str(info.value) == message
    assert isinstance(info.value, ValueError)


def test__scheduler__arguments_are_keyword_only():
    with pytest.raises(TypeError):
        LCPFNScheduler("training_iteration")  # type: ignore[misc]


def test__scheduler__without_ray_says_what_to_install(monkeypatch):
    monkeypatch.delitem(sys.modules, "lcpfn.integrations.ray")
    monkeypatch.setitem(sys.modules, "ray.tune", None)  # `import ray.tune` raises ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install 'lcpfn\[ray\]'"):
        importlib.import_module("lcpfn.integrations.ray")


# --- metric and mode --------------------------------------------------------------------------
def test__scheduler__takes_metric_and_mode_from_tune_config_once():
    scheduler = LCPFNScheduler(max_t=5)
    with pytest.raises(InputError, match="needs a metric and a mode, but got metric=None and mode=None"):
        scheduler.on_trial_add(None, Trial("__fake", stub=True))
    assert scheduler.set_search_properties("loss", "min") is True
    assert scheduler.set_search_properties("acc", None) is False  # Tune reports a conflict
    assert "metric='loss', mode='min'" in repr(scheduler)
    given = LCPFNScheduler(max_t=5, metric="acc", mode="max")
    assert given.set_search_properties(None, None) is True
    assert given.set_search_properties(None, "min") is False


def test__scheduler__results_without_the_metric_or_time_attr_continue():
    model = _GaussModel()
    scheduler = _scheduler(max_t=3, target=0.9, model=model)
    trial = _trial(scheduler)
    assert scheduler.on_trial_result(None, trial, {"training_iteration": 1}) == CONTINUE
    assert scheduler.on_trial_result(None, trial, {"acc": 0.0}) == CONTINUE
    assert model.calls == [] and scheduler.records == {}


def test__scheduler__wall_clock_time_attr_is_refused_naming_it():
    scheduler = _scheduler(max_t=3, time_attr="time_total_s", target=0.9)
    trial = _trial(scheduler)
    with pytest.raises(InputError, match=r"time_attr 'time_total_s' must count epochs in whole numbers, "
                                          r"but trial \w+ reported 1.37"):
        scheduler.on_trial_result(None, trial, {"time_total_s": 1.37, "acc": 0.5})


# --- the decision, exact ----------------------------------------------------------------------
def test__scheduler__maximize_stops_hopeless_trial_and_records_exact_forecast():
    model = _GaussModel()
    scheduler = _scheduler(max_t=3, model=model)
    best, decisions = _run(scheduler, {1: 0.2, 2: 0.5, 3: 0.8})
    assert decisions == [CONTINUE, CONTINUE, STOP]  # no target: nothing to beat; then max_t is reached
    assert model.calls == []

    bad = _trial(scheduler)
    assert _report(scheduler, bad, 1, 0.3) == STOP
    # Start level 0.2, threshold 0.8, gap 0.6 on each side -> bounds (-0.4, 1.4) (as LCPFNPruner).
    assert model.calls[-1]["bounds"] == pytest.approx((-0.4, 1.4), abs=1e-12)
    assert model.calls[-1]["max_epochs"] == 3 and model.calls[-1]["direction"] == "maximize"
    record = scheduler.records[bad.trial_id]
    expected = _p_gauss((0.3 + 0.4) / 1.8, (0.8 + 0.4) / 1.8)
    assert expected == pytest.approx(0.002737, abs=1e-6)  # below min_prob = 0.05
    assert record["p_improve"] == pytest.approx(expected, rel=1e-9)
    assert record == dict(record, step=1, max_resource=3, threshold=0.8, below=1, stopped=True)
    scheduler.on_trial_complete(None, bad, {"training_iteration": 1, "acc": 0.3})  # Tune does, after STOP

    good = _trial(scheduler)
    assert _report(scheduler, good, 1, 0.75) == CONTINUE
    assert scheduler.records[good.trial_id]["p_improve"] == pytest.approx(
        _p_gauss((0.75 + 0.4) / 1.8, (0.8 + 0.4) / 1.8), rel=1e-9
    )
    assert scheduler.records[good.trial_id]["stopped"] is False
    assert "1 trials stopped early, 1 completed" in scheduler.debug_string()


def test__scheduler__minimize_mirrors_maximize():
    model = _GaussModel()
    scheduler = _scheduler("min", max_t=3, model=model)
    _run(scheduler, {1: -0.2, 2: -0.5, 3: -0.8})
    bad = _trial(scheduler)
    assert _report(scheduler, bad, 1, -0.3) == STOP
    assert model.calls[-1]["direction"] == "minimize"
    assert scheduler.records[bad.trial_id]["threshold"] == -0.8
    assert scheduler.records[bad.trial_id]["p_improve"] == pytest.approx(
        _p_gauss((0.3 + 0.4) / 1.8, (0.8 + 0.4) / 1.8), rel=1e-9
    )


def test__scheduler__min_prob_is_the_threshold_on_p_improve():
    p = _p_gauss((0.75 + 0.4) / 1.8, (0.8 + 0.4) / 1.8)  # 0.39
    for min_prob, expected in [(p - 1e-6, CONTINUE), (p + 1e-6, STOP)]:
        scheduler = _scheduler(max_t=3, min_prob=min_prob)
        _run(scheduler, {1: 0.2, 2: 0.5, 3: 0.8})
        assert _report(scheduler, _trial(scheduler), 1, 0.75) == expected


def test__scheduler__threshold_is_the_best_completed_final_and_stopped_trials_do_not_count():
    scheduler = _scheduler(max_t=3, min_prob=0.5)
    _run(scheduler, {1: 0.2, 2: 0.5, 3: 0.6})
    _, decisions = _run(scheduler, {1: 0.7, 2: 0.75, 3: 0.8})
    assert decisions == [CONTINUE, CONTINUE, STOP]  # STOP: at max_t, so it completed
    _, decisions = _run(scheduler, {1: 0.1, 2: 0.95, 3: 0.99})  # would have been the best
    assert decisions == [STOP]
    trial = _trial(scheduler)
    _report(scheduler, trial, 1, 0.7)
    assert scheduler.records[trial.trial_id]["threshold"] == 0.8


def test__scheduler__trial_ending_before_max_t_completes_with_its_last_value():
    scheduler = _scheduler(max_t=10, min_prob=0.5)
    _run(scheduler, {1: 0.2, 2: 0.7})  # returned early (e.g. a stop criterion of the run)
    trial = _trial(scheduler)
    _report(scheduler, trial, 1, 0.5)
    assert scheduler.records[trial.trial_id]["threshold"] == 0.7


def test__scheduler__errored_trial_does_not_count():
    scheduler = _scheduler(max_t=3)
    failing = _trial(scheduler)
    _report(scheduler, failing, 1, 0.9)
    scheduler.on_trial_error(None, failing)
    assert _report(scheduler, _trial(scheduler), 1, 0.1) == CONTINUE  # nothing to beat yet


def test__scheduler__stops_at_max_t_and_counts_the_trial_as_completed():
    scheduler = _scheduler(max_t=2, min_prob=0.5)
    _, decisions = _run(scheduler, {1: 0.2, 2: 0.8, 3: 0.9})
    assert decisions == [CONTINUE, STOP]
    trial = _trial(scheduler)
    _report(scheduler, trial, 1, 0.5)
    assert scheduler.records[trial.trial_id]["threshold"] == 0.8  # its value at max_t


def test__scheduler__auto_max_t_waits_for_a_completed_trial_then_uses_its_last_step():
    model = _GaussModel()
    scheduler = _scheduler(max_t="auto", target=0.9, model=model)
    _, decisions = _run(scheduler, {s: 0.1 * s for s in range(1, 5)})
    assert decisions == [CONTINUE] * 4 and model.calls == []  # no horizon yet; no budget to stop at
    assert _report(scheduler, _trial(scheduler), 1, 0.05) == STOP
    assert model.calls[-1]["max_epochs"] == 4


def test__scheduler__target_is_the_threshold_before_any_trial_completes():
    scheduler = _scheduler(max_t=3, target=0.8)
    trial = _trial(scheduler)
    assert _report(scheduler, trial, 1, 0.3) == STOP
    assert scheduler.records[trial.trial_id]["threshold"] == 0.8
    assert _report(_scheduler(max_t=3), _trial(_scheduler(max_t=3)), 1, 0.3) == CONTINUE  # no target


def test__scheduler__grace_period_and_interval_steps_choose_the_checks():
    model = _GaussModel()
    scheduler = _scheduler(max_t=20, grace_period=3, interval_steps=4, min_prob=0.0, target=0.9, model=model)
    trial = _trial(scheduler)
    for step in [1, 2, 3, 4, 5, 6, 9, 12]:
        assert _report(scheduler, trial, step, 0.5) == CONTINUE
    # Checks at 3, 7 (postponed to the next reported step: 9) and 11 (at 12).
    assert [c["curve"].shape[1] for c in model.calls] == [3, 9, 12]


def test__scheduler__startup_trials_disable_stopping_until_enough_completed():
    scheduler = _scheduler(max_t=3, n_startup_trials=2)
    _run(scheduler, {1: 0.2, 2: 0.5, 3: 0.8})
    assert _report(scheduler, _trial(scheduler), 1, 0.1) == CONTINUE
    _run(scheduler, {1: 0.2, 2: 0.5, 3: 0.8})
    assert _report(scheduler, _trial(scheduler), 1, 0.1) == STOP


def test__scheduler__n_confirm_stops_after_consecutive_low_checks_and_a_high_one_resets():
    scheduler = _scheduler(max_t=10, n_confirm=2, target=0.8)
    trial = _trial(scheduler)
    assert _report(scheduler, trial, 1, 0.3) == CONTINUE
    assert scheduler.records[trial.trial_id]["below"] == 1
    assert _report(scheduler, trial, 2, 0.79) == CONTINUE  # promising: the count starts over
    assert scheduler.records[trial.trial_id]["below"] == 0
    assert _report(scheduler, trial, 3, 0.3) == CONTINUE
    assert _report(scheduler, trial, 4, 0.3) == STOP
    assert scheduler.records[trial.trial_id] == dict(scheduler.records[trial.trial_id], below=2, stopped=True)


def test__scheduler__a_repeated_result_is_not_a_second_check():
    # Tune sends a function trainable's last result again (done=True) when the function returns.
    model = _GaussModel()
    scheduler = _scheduler(max_t=10, n_confirm=2, target=0.8, model=model)
    trial = _trial(scheduler)
    assert _report(scheduler, trial, 1, 0.3) == CONTINUE
    assert _report(scheduler, trial, 1, 0.3, done=True) == CONTINUE
    assert len(model.calls) == 1 and scheduler.records[trial.trial_id]["below"] == 1


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test__scheduler__latest_nonfinite_value_stops_and_is_recorded(bad):
    scheduler = _scheduler(max_t=10)  # no target, no completed trial: only the non-finite rule
    trial = _trial(scheduler)
    assert _report(scheduler, trial, 1, 0.5) == CONTINUE
    assert _report(scheduler, trial, 2, bad) == STOP
    assert scheduler.records[trial.trial_id] == {"step": 2, "stopped": True, "reason": "non-finite value"}


def test__scheduler__earlier_nonfinite_values_are_missing_steps():
    model = _GaussModel()
    scheduler = _scheduler(max_t=10, target=0.1, interval_steps=3, model=model)  # checks at 1 and 3
    trial = _trial(scheduler)
    assert _report(scheduler, trial, 1, 0.2) == CONTINUE
    assert _report(scheduler, trial, 2, float("nan")) == CONTINUE
    assert _report(scheduler, trial, 3, 0.6) == CONTINUE
    np.testing.assert_allclose(model.calls[-1]["curve"][0], [0.2, 0.4, 0.6])


def test__scheduler__known_bounds_are_the_scale_and_the_forecast_is_not_truncated():
    # truncating to the known range lost LCBench bests in the replay (BENCHMARKS §13): the rule
    # maps with the bounds but keeps the forecast untruncated, as the Optuna pruner does
    model = _GaussModel()
    scheduler = _scheduler(max_t=10, target=90.0, bounds=(0, 100), model=model)
    trial = _trial(scheduler)
    _report(scheduler, trial, 1, 80.0)
    assert model.calls[-1]["bounds"] == (0.0, 100.0)
    expected = _p_gauss(0.8, 0.9)
    assert expected != pytest.approx(_p_gauss(0.8, 0.9, truncated=True), rel=1e-3)  # truncation would differ
    assert scheduler.records[trial.trial_id]["p_improve"] == pytest.approx(expected, rel=1e-9)


def test__scheduler__pickles_and_restores_its_state(tmp_path):
    scheduler = _scheduler(max_t=3, n_confirm=2)
    _run(scheduler, {1: 0.2, 2: 0.5, 3: 0.8})
    trial = _trial(scheduler)
    assert _report(scheduler, trial, 1, 0.3) == CONTINUE  # one low check of two
    path = tmp_path / "scheduler.pkl"
    scheduler.save(str(path))
    restored = LCPFNScheduler(max_t=3, model=_GaussModel())
    restored.restore(str(path))
    assert _report(restored, trial, 2, 0.3) == STOP  # the count and the threshold came back
    copy = pickle.loads(pickle.dumps(LCPFNScheduler(max_t=3)))  # Tune pickles it with the experiment
    assert copy._model._loaded is None


# --- a real Ray Tune run ----------------------------------------------------------------------
@pytest.mark.slow
def test__scheduler__real_tune_run_stops_hopeless_trials_and_runs_the_best_to_max_t(tmp_path, monkeypatch):
    """A local Ray runtime (2 CPUs) runs 4 trials, one at a time: the best first, then 3 hopeless ones."""
    ray = pytest.importorskip("ray")
    from ray import tune

    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")  # nothing leaves the machine
    monkeypatch.setenv("RAY_AIR_NEW_OUTPUT", "0")
    max_t = 20

    def trainable(config):  # defined here: Ray ships it to the workers by value
        start, gain = config["curve"]
        for epoch in range(1, max_t + 1):
            tune.report({"acc": start + gain * (1 - math.exp(-epoch / 4))})

    scheduler = LCPFNScheduler(max_t=max_t)  # the shipped default model
    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        tuner = tune.Tuner(
            trainable,
            # (start, gain): the best ends at 0.88; the others stay near 0.1, 0.15 and 0.2.
            param_space={"curve": tune.grid_search([(0.5, 0.4), (0.1, 0.02), (0.15, 0.02), (0.2, 0.02)])},
            tune_config=tune.TuneConfig(metric="acc", mode="max", scheduler=scheduler, max_concurrent_trials=1),
            run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0),
        )
        results = tuner.fit()
    finally:
        ray.shutdown()
    print(f"Ray Tune run: {time.perf_counter() - t0:.1f} s")  # the CI budget is 3 minutes (issue 17)

    assert results.num_errors == 0
    (best,) = [r for r in results if r.config["curve"][0] == 0.5]
    hopeless = [r for r in results if r.config["curve"][0] != 0.5]
    assert best.metrics["training_iteration"] == max_t
    assert len(hopeless) == 3
    for result in hopeless:
        # Stopped early: with the shipped model, at epoch 5 of 20 (P(improve) 0.04 on the study's scale).
        assert result.metrics["training_iteration"] <= max_t // 2
        record = scheduler.records[result.metrics["trial_id"]]
        assert record["stopped"] is True and record["p_improve"] < 0.05
        assert record["threshold"] == pytest.approx(best.metrics["acc"])
    assert "3 trials stopped early, 1 completed" in scheduler.debug_string()
