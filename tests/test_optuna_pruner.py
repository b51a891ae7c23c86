"""LCPFNPruner driven through real Optuna studies (ask / report / should_prune / tell).

Most tests use `_GaussModel`, a stand-in with the `LCPFN.predict` signature whose forecast is a
normal distribution in model space centred on the last observed value: its P(improve) can be
computed by hand, so the pruner's normalisation and decision rule are checked exactly. The tests
on the real model use the shipped default model (what `LCPFNPruner()` loads), and the distributed
tests run worker processes (tests/_optuna_pruner_worker.py) on one study in a shared storage.
"""

from __future__ import annotations

import importlib.util
import math
import os
import pickle
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

optuna = pytest.importorskip("optuna")
norm = pytest.importorskip("scipy.stats").norm

from lcpfn.errors import InputError  # noqa: E402
from lcpfn.forecast import Forecast, Predictor  # noqa: E402
from lcpfn.integrations.optuna import ATTR_KEY, LCPFNPruner  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)

SIGMA = 0.1  # model-space standard deviation of _GaussModel's forecast
WORKER = Path(__file__).with_name("_optuna_pruner_worker.py")
POSTGRES_URL = os.environ.get(
    "LCPFN_TEST_POSTGRES_URL", "postgresql+psycopg2://lcpfn:lcpfn@127.0.0.1:5432/lcpfn_test"
)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    # A forecast of one curve is a tiny forward pass: intra-op threads only add latency, and on a
    # busy machine a lot of it (hundreds of ms per call).
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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


def _study(direction: str, pruner: LCPFNPruner) -> optuna.Study:
    return optuna.create_study(direction=direction, pruner=pruner, sampler=optuna.samplers.RandomSampler(seed=0))


def _complete(study, values: dict[int, float], value: float | None = None) -> None:
    trial = study.ask()
    for step, v in values.items():
        trial.report(v, step)
    study.tell(trial, list(values.values())[-1] if value is None else value)


def _report(trial, step: int, value: float) -> bool:
    trial.report(value, step)
    return trial.should_prune()


def _p_gauss(z_now: float, z_threshold: float, *, truncated: bool = False) -> float:
    """P(Z > z_threshold) for Z ~ N(z_now, SIGMA): the stand-in's P(improve) in model space. The
    study-derived range the pruner maps with is only a scale (``keep_within`` the known sides), so
    the forecast is untruncated; with both sides of the metric's range known (they map to [0, 1])
    it is ``truncated`` there and renormalised."""
    if not truncated:
        return float(norm.sf((z_threshold - z_now) / SIGMA))
    lo, hi, t = ((z - z_now) / SIGMA for z in (0.0, 1.0, z_threshold))
    return float((norm.cdf(hi) - norm.cdf(t)) / (norm.cdf(hi) - norm.cdf(lo)))


def _median_gauss(z_now: float, *, truncated: bool = False) -> float:
    """The median of N(z_now, SIGMA) (see `_p_gauss`), model space."""
    if not truncated:
        return z_now
    lo, hi = ((z - z_now) / SIGMA for z in (0.0, 1.0))
    return float(z_now + SIGMA * norm.ppf(norm.cdf(lo) + 0.5 * (norm.cdf(hi) - norm.cdf(lo))))


# --- constructor ------------------------------------------------------------------------------
def test__pruner__defaults_need_only_max_resource():
    pruner = LCPFNPruner(max_resource=50)
    assert "max_resource=50" in repr(pruner) and "min_prob=0.05" in repr(pruner)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(max_resource=0), "max_resource must be at least 1 but got 0"),
        (dict(max_resource="50"), "max_resource must be an integer or 'auto' but got '50'"),
        (dict(max_resource=2.5), "max_resource must be an integer or 'auto' but got 2.5"),
        (dict(min_prob=1.5), "min_prob must be between 0 and 1 but got 1.5"),
        (dict(min_prob=-0.1), "min_prob must be between 0 and 1 but got -0.1"),
        (dict(min_prob="x"), "min_prob must be a number but got 'x'"),
        (dict(n_startup_trials=-1), "n_startup_trials must be at least 0 but got -1"),
        (dict(n_warmup_steps=-2), "n_warmup_steps must be at least 0 but got -2"),
        (dict(interval_steps=0), "interval_steps must be at least 1 but got 0"),
        (dict(interval_steps=1.5), "interval_steps must be an integer but got 1.5"),
        (dict(n_confirm=0), "n_confirm must be at least 1 but got 0"),
        (dict(n_confirm=True), "n_confirm must be an integer but got True"),
        (dict(target=float("nan")), "target must be finite but got nan"),
        (dict(history="yes"), "history must be True or False but got 'yes'"),
        (dict(bounds=(1.0, 0.0)), "bounds must be finite with low < high, but got (1.0, 0.0)"),
        (dict(bounds=3), "bounds must be a pair (low, high) of numbers, with None for an unknown side, or 'infer', "
                         "but got 3"),
        (dict(bounds=(0.0, 1.0, 2.0)), "bounds must be a pair (low, high) of numbers, with None for an unknown "
                                       "side, or 'infer', but got (0.0, 1.0, 2.0)"),
        (dict(bounds=(0.0, "x")), "bounds must be a pair (low, high) of numbers, with None for an unknown side, "
                                  "but got (0.0, 'x')"),
        (dict(bounds=(0.0, float("inf"))), "bounds must be finite with low < high (use None, not infinity, for an "
                                           "unknown side), but got (0.0, inf)"),
        (dict(model=42), "model must be an LCPFN, a model name or a checkpoint directory, but got 42"),
    ],
)
def test__pruner__rejects_bad_arguments_naming_them(kwargs, message):
    kwargs = {"max_resource": 10, **kwargs}
    with pytest.raises(InputError) as info:
        LCPFNPruner(**kwargs)
    assert str(info.value) == message
    assert isinstance(info.value, ValueError)


def test__pruner__arguments_are_keyword_only():
    with pytest.raises(TypeError):
        LCPFNPruner(50)  # type: ignore[misc]


# --- the decision, both directions, exact ------------------------------------------------------
def test__pruner__maximize_prunes_hopeless_trial_and_records_exact_forecast():
    model = _GaussModel()
    study = _study("maximize", LCPFNPruner(max_resource=3, model=model))
    _complete(study, {1: 0.2, 2: 0.5, 3: 0.8})

    trial = study.ask()
    assert _report(trial, 1, 0.3) is True
    # Start level 0.2, threshold 0.8, gap 0.6 on each side -> bounds (-0.4, 1.4).
    assert model.calls[-1]["bounds"] == pytest.approx((-0.4, 1.4), abs=1e-12)
    assert model.calls[-1]["max_epochs"] == 3 and model.calls[-1]["direction"] == "maximize"
    record = study.trials[-1].user_attrs[ATTR_KEY]
    expected = _p_gauss((0.3 + 0.4) / 1.8, (0.8 + 0.4) / 1.8)
    assert expected == pytest.approx(0.002737, abs=1e-6)  # below min_prob = 0.05
    assert record["p_improve"] == pytest.approx(expected, rel=1e-9)
    assert record["median_final"] == pytest.approx(1.8 * _median_gauss((0.3 + 0.4) / 1.8) - 0.4, abs=1e-9)
    assert record == dict(record, step=1, max_resource=3, threshold=0.8, below=1, pruned=True)
    study.tell(trial, state=optuna.trial.TrialState.PRUNED)

    good = study.ask()
    assert _report(good, 1, 0.75) is False
    assert ATTR_KEY not in study.trials[-1].user_attrs  # a check that finds the trial promising writes nothing
    # The same check in doubt (min_prob 1) but not confirmed yet (n_confirm 2) is recorded: its exact P.
    doubtful = _study("maximize", LCPFNPruner(max_resource=3, min_prob=1.0, n_confirm=2, model=_GaussModel()))
    _complete(doubtful, {1: 0.2, 2: 0.5, 3: 0.8})
    assert _report(doubtful.ask(), 1, 0.75) is False
    record = doubtful.trials[-1].user_attrs[ATTR_KEY]
    assert record["p_improve"] == pytest.approx(_p_gauss((0.75 + 0.4) / 1.8, (0.8 + 0.4) / 1.8), rel=1e-9)
    assert record["p_improve"] == pytest.approx(0.3905, abs=1e-4)
    assert record["below"] == 1 and record["pruned"] is False


def test__pruner__minimize_on_loss_scale_prunes_hopeless_trial():
    model = _GaussModel()
    study = _study("minimize", LCPFNPruner(max_resource=3, model=model))
    _complete(study, {1: 300.0, 2: 200.0, 3: 120.0})

    bad = study.ask()
    assert _report(bad, 1, 280.0) is True
    # Start level 300, threshold 120, gap 180 -> bounds (-60, 480); minimize maps y -> (480 - y) / 540.
    assert model.calls[-1]["bounds"] == pytest.approx((-60.0, 480.0))
    assert model.calls[-1]["direction"] == "minimize"
    record = study.trials[-1].user_attrs[ATTR_KEY]
    assert record["p_improve"] == pytest.approx(_p_gauss(200 / 540, 360 / 540), rel=1e-9)
    assert record["threshold"] == 120.0
    assert record["median_final"] == pytest.approx(480.0 - 540.0 * _median_gauss(200 / 540), abs=1e-9)
    study.tell(bad, state=optuna.trial.TrialState.PRUNED)

    good = study.ask()
    assert _report(good, 1, 130.0) is False
    assert ATTR_KEY not in study.trials[-1].user_attrs
    doubtful = _study("minimize", LCPFNPruner(max_resource=3, min_prob=1.0, n_confirm=2, model=_GaussModel()))
    _complete(doubtful, {1: 300.0, 2: 200.0, 3: 120.0})
    assert _report(doubtful.ask(), 1, 130.0) is False
    assert doubtful.trials[-1].user_attrs[ATTR_KEY]["p_improve"] == pytest.approx(_p_gauss(350 / 540, 360 / 540))


def test__pruner__min_prob_is_the_threshold_on_p_improve():
    # Same trial: P(improve) = 0.002737 -> pruned at min_prob 0.05 and 0.003, kept at 0.0027 and 0.
    for min_prob, pruned in [(0.05, True), (0.003, True), (0.0027, False), (0.0, False)]:
        study = _study("maximize", LCPFNPruner(max_resource=3, min_prob=min_prob, model=_GaussModel()))
        _complete(study, {1: 0.2, 2: 0.5, 3: 0.8})
        assert _report(study.ask(), 1, 0.3) is pruned, min_prob


def test__pruner__threshold_is_best_completed_final_value_in_study_direction():
    model = _GaussModel()
    study = _study("minimize", LCPFNPruner(max_resource=2, model=model))
    _complete(study, {1: 5.0, 2: 3.0})
    _complete(study, {1: 4.0, 2: 1.0})
    _complete(study, {1: 3.0})  # stopped early: its objective value stands in for its final value
    _complete(study, {1: 6.0, 2: 2.0}, value=-100.0)  # the reported final value, not the objective
    trial = study.ask()
    trial.report(4.5, 1)
    trial.should_prune()
    assert study.trials[-1].user_attrs[ATTR_KEY]["threshold"] == 1.0


def test__pruner__user_bounds_are_used_and_widened_to_hold_values():
    model = _GaussModel()
    study = _study("maximize", LCPFNPruner(max_resource=3, bounds=(0.0, 100.0), model=model))
    _complete(study, {1: 50.0, 2: 70.0, 3: 90.0})
    _report(study.ask(), 1, 40.0)
    assert model.calls[-1]["bounds"] == (0.0, 100.0)
    _report(study.ask(), 1, 120.0)  # outside the declared bounds: widened, not an error
    assert model.calls[-1]["bounds"] == (0.0, 120.0)


def test__pruner__one_known_side_of_bounds_replaces_that_derived_side():
    model = _GaussModel()
    # a loss: known low 0; start level 300, threshold 120, gap 180 -> derived (-60, 480) -> (0, 480)
    study = _study("minimize", LCPFNPruner(max_resource=3, bounds=(0, None), model=model))
    _complete(study, {1: 300.0, 2: 200.0, 3: 120.0})
    _report(study.ask(), 1, 250.0)
    assert model.calls[-1]["bounds"] == pytest.approx((0.0, 480.0))
    # an upper bound only: (-60, 400)
    model = _GaussModel()
    study = _study("minimize", LCPFNPruner(max_resource=3, bounds=(None, 400.0), model=model))
    _complete(study, {1: 300.0, 2: 200.0, 3: 120.0})
    _report(study.ask(), 1, 250.0)
    assert model.calls[-1]["bounds"] == pytest.approx((-60.0, 400.0))
    # (None, None) and "infer" are no bounds at all
    assert LCPFNPruner(max_resource=3, bounds=(None, None))._bounds is None
    assert LCPFNPruner(max_resource=3, bounds="infer")._bounds is None


def test__pruner__known_side_beyond_the_other_derived_side_keeps_the_derived_width():
    model = _GaussModel()
    # start 0.2, threshold 0.8, gap 0.6 -> derived (-0.4, 1.4), width 1.8; known low 2 -> high 3.8,
    # then low widened down to the trial's value 0.3 and the threshold
    study = _study("maximize", LCPFNPruner(max_resource=3, bounds=(2.0, None), model=model))
    _complete(study, {1: 0.2, 2: 0.5, 3: 0.8})
    _report(study.ask(), 1, 0.3)
    assert model.calls[-1]["bounds"] == pytest.approx((0.3, 3.8))


def test__pruner__scale_uses_median_start_of_completed_trials_ignoring_outliers():
    model = _GaussModel()
    study = _study("maximize", LCPFNPruner(max_resource=2, model=model))
    _complete(study, {1: 0.1, 2: 0.5})
    _complete(study, {1: 0.3, 2: 0.6})
    _complete(study, {1: 1e6, 2: 0.4})  # a wild first value
    _complete(study, {1: float("nan"), 2: 0.2})  # no finite first value: not a start
    _report(study.ask(), 1, 0.45)
    # Starts 0.1, 0.3, 1e6 -> median 0.3; threshold 0.6; gap 0.3 -> bounds (0.0, 0.9).
    assert model.calls[-1]["bounds"] == pytest.approx((0.0, 0.9))


def test__pruner__scale_uses_trial_start_before_any_trial_completes():
    model = _GaussModel()
    study = _study("minimize", LCPFNPruner(max_resource=5, target=2.0, model=model))
    trial = study.ask()
    trial.report(10.0, 1)
    assert trial.should_prune() is True
    _report(trial, 2, 30.0)  # the curve is always inside the bounds
    # Start 10 (the trial's first value), target 2, gap 8 -> (-6, 18), widened to hold 30.
    assert model.calls[-1]["bounds"] == pytest.approx((-6.0, 30.0))


def test__pruner__constant_values_get_a_nonzero_span():
    model = _GaussModel()
    study = _study("maximize", LCPFNPruner(max_resource=3, model=model))
    _complete(study, {1: 2.0, 2: 2.0, 3: 2.0})
    assert _report(study.ask(), 1, 2.0) is False
    assert model.calls[-1]["bounds"] == pytest.approx((1.8, 2.2))


# --- steps: order, gaps, step 0, the end ------------------------------------------------------
def test__pruner__unsorted_and_missing_steps_are_interpolated():
    model = _GaussModel()
    study = _study("maximize", LCPFNPruner(max_resource=10, model=model))
    _complete(study, {s: 0.1 * s for s in range(1, 11)})
    trial = study.ask()
    trial.report(0.5, 5)
    trial.report(0.1, 1)  # reported after step 5
    trial.report(0.3, 2)
    trial.should_prune()
    # Steps 1, 2, 5 -> epochs 1..5 with 3 and 4 interpolated between 0.3 and 0.5.
    np.testing.assert_allclose(model.calls[-1]["curve"][0], [0.1, 0.3, 0.3 + 0.2 / 3, 0.3 + 0.4 / 3, 0.5])
    assert model.calls[-1]["max_epochs"] == 10


def test__pruner__first_reported_step_after_one_is_held_constant_before():
    model = _GaussModel()
    study = _study("maximize", LCPFNPruner(max_resource=10, model=model))
    _complete(study, {s: 0.1 * s for s in range(1, 11)})
    trial = study.ask()
    trial.report(0.4, 3)
    trial.should_prune()
    np.testing.assert_allclose(model.calls[-1]["curve"][0], [0.4, 0.4, 0.4])


def test__pruner__zero_based_steps_shift_by_one_epoch():
    model = _GaussModel()
    study = _study("maximize", LCPFNPruner(max_resource=9, model=model))
    _complete(study, {s: 0.1 * s for s in range(10)})
    trial = study.ask()
    trial.report(0.0, 0)
    trial.report(0.05, 1)
    trial.should_prune()
    np.testing.assert_allclose(model.calls[-1]["curve"][0], [0.0, 0.05])
    assert model.calls[-1]["max_epochs"] == 10


def test__pruner__never_prunes_at_or_after_max_resource():
    model = _GaussModel()
    study = _study("maximize", LCPFNPruner(max_resource=3, model=model))
    _complete(study, {1: 0.2, 2: 0.5, 3: 0.8})
    trial = study.ask()
    trial.report(0.0, 3)
    assert trial.should_prune() is False
    trial.report(0.0, 4)
    assert trial.should_prune() is False
    assert model.calls == []


def test__pruner__auto_max_resource_waits_for_a_completed_trial_then_uses_its_last_step():
    model = _GaussModel()
    study = _study("maximize", LCPFNPruner(max_resource="auto", target=0.9, model=model))
    assert _report(study.ask(), 1, 0.0) is False  # horizon unknown, even with a target
    assert model.calls == []
    _complete(study, {1: 0.2, 2: 0.5, 3: 0.6, 4: 0.8})
    _complete(study, {1: 0.2, 2: 0.3})
    assert _report(study.ask(), 1, 0.1) is True
    assert model.calls[-1]["max_epochs"] == 4


# --- rules: startup, warm-up, interval, target ------------------------------------------------
def test__pruner__startup_trials_disable_pruning_until_enough_completed():
    study = _study("maximize", LCPFNPruner(max_resource=3, n_startup_trials=2, model=_GaussModel()))
    _complete(study, {1: 0.2, 2: 0.5, 3: 0.8})
    assert _report(study.ask(), 1, 0.0) is False
    _complete(study, {1: 0.2, 2: 0.5, 3: 0.7})
    assert _report(study.ask(), 1, 0.0) is True


def test__pruner__warmup_steps_disable_pruning_before_them():
    model = _GaussModel()
    study = _study("maximize", LCPFNPruner(max_resource=10, n_warmup_steps=3, model=model))
    _complete(study, {s: 0.1 * s for s in range(1, 11)})
    trial = study.ask()
    assert [_report(trial, s, 0.0) for s in (1, 2, 3)] == [False, False, True]
    assert len(model.calls) == 1


def test__pruner__n_confirm_prunes_after_that_many_consecutive_low_checks():
    model = _GaussModel()
    study = _study("maximize", LCPFNPruner(max_resource=10, n_confirm=2, model=model))
    _complete(study, {s: 0.1 * s for s in range(1, 11)})
    trial = study.ask()
    # low, high (resets the count), low, low -> pruned at the second low in a row
    decisions = [_report(trial, s, v) for s, v in [(1, 0.0), (2, 0.95), (3, 0.0), (4, 0.0)]]
    assert decisions == [False, False, False, True]
    assert study.trials[-1].user_attrs[ATTR_KEY]["below"] == 2
    assert study.trials[-1].user_attrs[ATTR_KEY]["pruned"] is True


def test__pruner__n_confirm_counts_a_repeated_check_of_one_step_once():
    model = _GaussModel()
    pruner = LCPFNPruner(max_resource=10, n_confirm=2, model=model)
    study = _study("maximize", pruner)
    _complete(study, {s: 0.1 * s for s in range(1, 11)})
    trial = study.ask()
    trial.report(0.0, 1)
    # should_prune twice at one step (or two workers checking it): still one low check
    assert [trial.should_prune(), trial.should_prune(), trial.should_prune()] == [False, False, False]
    assert study.trials[-1].user_attrs[ATTR_KEY]["below"] == 1
    trial.report(0.0, 2)
    assert trial.should_prune() is True and trial.should_prune() is True
    assert study.trials[-1].user_attrs[ATTR_KEY]["below"] == 2


def _history_study(history: bool, finals: list[float], model) -> optuna.Study:
    """max_resource 10, bounds (0, 1) (model space = caller units), completed trials flat at 0.1 until
    step 9 that end at ``finals``: the stand-in forecast them at 0.1, so a final above ~0.4 surprised it."""
    study = _study("maximize", LCPFNPruner(max_resource=10, bounds=(0, 1), history=history, model=model))
    for final in finals:
        _complete(study, {**{s: 0.1 for s in range(1, 10)}, 10: final})
    return study


def test__pruner__history_spares_a_trial_when_completed_trials_beat_their_forecasts():
    model = _GaussModel()
    study = _history_study(True, [0.9, 0.85, 0.8], model)
    trial = study.ask()
    trial.report(0.1, 1)
    n_calls = len(model.calls)
    assert _report(trial, 2, 0.6) is False
    record = study.trials[-1].user_attrs[ATTR_KEY]
    p = _p_gauss(0.6, 0.9)  # 0.00135: the model alone prunes; (0, 1) known: truncated
    # the three completed trials were forecast from their first 2 values (one batch of 3 curves) and each
    # ended far above its forecast: q_j ~ 0 < p for all, so P = (3 + 10 p) / (3 + 10)
    assert len(model.calls) == n_calls + 2 and model.calls[-1]["curve"].shape == (3, 2)
    assert record["n_history"] == 3
    assert record["p_history"] == pytest.approx((3 + 10 * p) / 13, rel=1e-9)
    assert record["p_improve"] == record["p_history"] and record["pruned"] is False
    assert "history=True" in repr(study.pruner)


def test__pruner__history_of_well_forecast_trials_changes_nothing():
    model = _GaussModel()
    study = _history_study(True, [0.1, 0.1, 0.1], model)  # finals as forecast: q_j = 0.5
    study.tell(study.ask(), 0.9)  # a trial with only an objective value: no curve to check, skipped
    trial = study.ask()
    assert _report(trial, 1, 0.6) is True
    record = study.trials[-1].user_attrs[ATTR_KEY]
    p = _p_gauss(0.6, 0.9)
    assert record["n_history"] == 3 and record["p_history"] == pytest.approx(10 * p / 13, rel=1e-9)
    assert record["p_improve"] == pytest.approx(p, rel=1e-9)  # never lowered below the model's own
    assert record["pruned"] is True


def test__pruner__history_is_off_by_default_and_only_consulted_below_min_prob():
    model = _GaussModel()
    study = _history_study(False, [0.9, 0.85], model)
    trial = study.ask()
    assert _report(trial, 1, 0.6) is True
    assert "p_history" not in study.trials[-1].user_attrs[ATTR_KEY]
    study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    model = _GaussModel()
    study = _history_study(True, [0.9, 0.85], model)
    trial = study.ask()
    n_calls = len(model.calls)
    assert _report(trial, 1, 0.85) is False  # P(improve) 0.31: no history needed (and no record)
    assert len(model.calls) == n_calls + 1 and ATTR_KEY not in study.trials[-1].user_attrs


def test__pruner__interval_steps_check_every_interval_after_warmup():
    model = _GaussModel()
    pruner = LCPFNPruner(max_resource=20, n_warmup_steps=2, interval_steps=3, min_prob=0.0, model=model)
    study = _study("maximize", pruner)
    _complete(study, {s: 0.05 * s for s in range(1, 21)})
    trial = study.ask()
    checked = []
    for s in range(1, 12):
        _report(trial, s, 0.01)
        checked.append(s) if model.calls and model.calls[-1]["curve"].shape[1] == s else None
    assert checked == [2, 5, 8, 11]


def test__pruner__interval_check_postponed_to_next_reported_step():
    model = _GaussModel()
    pruner = LCPFNPruner(max_resource=20, interval_steps=3, min_prob=0.0, model=model)
    study = _study("maximize", pruner)
    _complete(study, {s: 0.05 * s for s in range(1, 21)})
    trial = study.ask()
    checked = []
    for s in (1, 2, 4, 5, 7, 10):
        _report(trial, s, 0.01)
        checked.append(s) if model.calls and model.calls[-1]["curve"].shape[1] == s else None
    # Checks are due at 0, 3, 6, 9: none of them is reported, so each happens at the next step.
    assert checked == [1, 4, 7, 10]


def test__pruner__target_is_threshold_before_any_trial_completes():
    model = _GaussModel()
    study = _study("maximize", LCPFNPruner(max_resource=3, target=0.8, bounds=(0.0, 1.0), model=model))
    trial = study.ask()
    assert _report(trial, 1, 0.1) is True
    assert study.trials[-1].user_attrs[ATTR_KEY]["threshold"] == 0.8
    no_target = _study("maximize", LCPFNPruner(max_resource=3, model=_GaussModel()))
    assert _report(no_target.ask(), 1, 0.1) is False


def test__pruner__completed_trial_replaces_target():
    study = _study("maximize", LCPFNPruner(max_resource=3, target=0.99, model=_GaussModel()))
    _complete(study, {1: 0.1, 2: 0.15, 3: 0.2})
    trial = study.ask()
    assert _report(trial, 1, 0.18) is False  # against the target 0.99 it would be pruned
    # every check in doubt (min_prob 1), none confirmed (n_confirm 2): the record shows the threshold
    study = _study("maximize", LCPFNPruner(max_resource=3, target=0.99, min_prob=1.0, n_confirm=2,
                                           model=_GaussModel()))
    _complete(study, {1: 0.1, 2: 0.15, 3: 0.2})
    assert _report(study.ask(), 1, 0.18) is False
    assert study.trials[-1].user_attrs[ATTR_KEY]["threshold"] == 0.2


# --- NaN / inf -------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test__pruner__latest_nonfinite_value_prunes_and_is_recorded(bad):
    for direction in ("maximize", "minimize"):
        model = _GaussModel()
        study = _study(direction, LCPFNPruner(max_resource=5, model=model))
        _complete(study, {s: 0.2 * s for s in range(1, 6)})
        trial = study.ask()
        assert _report(trial, 1, 0.8) is False
        assert _report(trial, 2, bad) is True
        assert study.trials[-1].user_attrs[ATTR_KEY] == {"step": 2, "pruned": True, "reason": "non-finite value"}
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)


def test__pruner__earlier_nonfinite_values_are_missing_steps():
    model = _GaussModel()
    study = _study("maximize", LCPFNPruner(max_resource=5, model=model))
    _complete(study, {1: 0.2, 2: float("nan"), 3: 0.6, 4: float("inf"), 5: 1.0})  # others' too
    trial = study.ask()
    _report(trial, 1, 0.5)
    _report(trial, 2, float("nan"))
    assert _report(trial, 3, 0.7) is False
    np.testing.assert_allclose(model.calls[-1]["curve"][0], [0.5, 0.6, 0.7])
    assert model.calls[-1]["bounds"] == pytest.approx((-0.6, 1.8))  # start 0.2, threshold 1.0


def test__pruner__nonfinite_value_waits_for_warmup():
    study = _study("maximize", LCPFNPruner(max_resource=5, n_warmup_steps=2, model=_GaussModel()))
    _complete(study, {s: 0.2 * s for s in range(1, 6)})
    assert _report(study.ask(), 1, float("nan")) is False


def test__pruner__nonfinite_objective_values_are_ignored_for_threshold():
    model = _GaussModel()
    study = _study("minimize", LCPFNPruner(max_resource=3, model=model))
    with pytest.warns(UserWarning, match="nan is not acceptable"):
        _complete(study, {1: 3.0}, value=float("nan"))  # Optuna marks this trial FAIL
    _complete(study, {1: 3.0, 2: 2.0, 3: 1.0})
    _report(study.ask(), 1, 2.5)
    assert study.trials[-1].user_attrs[ATTR_KEY]["threshold"] == 1.0


# --- cost: one read per check, writes only in doubt, the incumbent cache, one torch thread ------
class _CountingStorage(optuna.storages.InMemoryStorage):
    """An in-memory storage that lists every ``get_*`` (read) and ``set_*`` (write) call made of it."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def __getattribute__(self, name):
        attr = super().__getattribute__(name)
        if name.startswith(("get_", "set_")) and callable(attr):
            calls = super().__getattribute__("calls")

            def counted(*args, **kwargs):
                calls.append(name)
                return attr(*args, **kwargs)

            return counted
        return attr


def test__pruner__a_check_reads_the_storage_once_and_writes_only_in_doubt():
    storage = _CountingStorage()
    pruner = LCPFNPruner(max_resource=10, n_warmup_steps=2, n_confirm=2, model=_GaussModel())
    study = optuna.create_study(storage=storage, direction="maximize", pruner=pruner)
    _complete(study, {s: 0.1 * s for s in range(1, 11)})
    trial = study.ask()
    calls = []
    for step, value in [(1, 0.0), (2, 0.95), (3, 0.0), (4, 0.95), (5, 0.95), (6, 0.0), (7, 0.0)]:
        trial.report(value, step)
        storage.calls.clear()
        pruned = trial.should_prune()
        calls.append((pruned, list(storage.calls)))
    read, write = "get_all_trials", "set_trial_user_attr"
    assert calls == [
        (False, []),  # warm-up: no read
        (False, [read]),  # promising: nothing to write
        (False, [read, write]),  # low (1 of 2): recorded, for the next check to count on
        (False, [read, write]),  # promising after a low check: the reset is recorded
        (False, [read]),
        (False, [read, write]),
        (True, [read, write]),  # the second low check in a row prunes
    ]


def test__pruner__incumbent_is_cached_until_a_trial_completes_in_another_process(tmp_path, monkeypatch):
    from lcpfn.integrations import _optuna_pruner

    scans = []
    best_final = _optuna_pruner._best_final
    monkeypatch.setattr(_optuna_pruner, "_best_final", lambda *args: scans.append(1) or best_final(*args))
    url = f"sqlite:///{tmp_path / 'study.db'}"
    # min_prob 1, n_confirm never reached: every check is recorded (with its threshold), none prunes
    pruner = LCPFNPruner(max_resource=10, min_prob=1.0, n_confirm=10**6, model=_GaussModel())
    here = optuna.create_study(study_name="s", storage=url, direction="maximize", pruner=pruner)
    elsewhere = optuna.load_study(study_name="s", storage=optuna.storages.RDBStorage(url))  # another process
    _complete(here, {s: 0.05 * s for s in range(1, 11)})
    trial = here.ask()
    thresholds = []
    for step in range(1, 7):
        if step == 4:
            _complete(elsewhere, {s: 0.09 * s for s in range(1, 11)})  # a better trial completes there
        _report(trial, step, 0.3)
        thresholds.append(here.trials[trial.number].user_attrs[ATTR_KEY]["threshold"])
    assert thresholds == pytest.approx([0.5, 0.5, 0.5, 0.9, 0.9, 0.9])
    assert len(scans) == 2  # the completed trials were scanned once before and once after


def test__pruner__one_pruner_on_two_studies_keeps_their_incumbents_apart():
    pruner = LCPFNPruner(max_resource=3, min_prob=1.0, n_confirm=10**6, model=_GaussModel())
    studies = [_study("maximize", pruner), _study("maximize", pruner)]
    _complete(studies[0], {1: 0.2, 2: 0.5, 3: 0.8})
    _complete(studies[1], {1: 0.1, 2: 0.2, 3: 0.3})  # as many completed trials, another best
    trials = [study.ask() for study in studies]
    for step in (1, 2):
        for study, trial, threshold in zip(studies, trials, (0.8, 0.3)):
            _report(trial, step, 0.25)
            assert study.trials[-1].user_attrs[ATTR_KEY]["threshold"] == threshold


def test__pruner__forecasts_on_one_torch_thread_and_restores_the_callers_setting():
    import threading

    import torch

    seen = []

    class _ThreadsModel(_GaussModel):
        def _forecast(self, batch):
            seen.append(torch.get_num_threads())
            return super()._forecast(batch)

    study = _study("maximize", LCPFNPruner(max_resource=5, model=_ThreadsModel()))
    _complete(study, {s: 0.2 * s for s in range(1, 6)})
    trial = study.ask()
    torch.set_num_threads(2)  # the caller's choice, e.g. for its training (the module fixture restores 1)
    try:
        trial.report(0.5, 1)
        trial.should_prune()
        assert seen == [1] and torch.get_num_threads() == 2
        # in another thread (study.optimize(n_jobs=...)), the forecast leaves this thread's setting alone
        worker = threading.Thread(target=lambda: (trial.report(0.5, 2), trial.should_prune()))
        worker.start()
        worker.join()
        assert seen == [1, 1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)


# --- study types, statelessness, pickling, threads -------------------------------------------
def test__pruner__multi_objective_study_is_rejected():
    pruner = LCPFNPruner(max_resource=3, model=_GaussModel())
    study = optuna.create_study(directions=["maximize", "minimize"], pruner=pruner)
    trial = study.ask()
    with pytest.raises(InputError, match="single-objective studies only, but this study has 2 objectives"):
        pruner.prune(study, study.trials[-1])
    study.tell(trial, [1.0, 1.0])


@pytest.mark.parametrize("n_confirm, expected", [(1, [False, True, True]), (2, [False, False, True])])
def test__pruner__decision_depends_only_on_storage(n_confirm, expected):
    model = _GaussModel()
    storage = optuna.storages.InMemoryStorage()
    pruner = LCPFNPruner(max_resource=5, n_confirm=n_confirm, model=model)
    study = optuna.create_study(storage=storage, direction="maximize", pruner=pruner)
    _complete(study, {s: 0.2 * s for s in range(1, 6)})
    trial = study.ask()
    decisions = []
    for s, v in [(1, 0.8), (2, 0.3), (3, 0.3)]:
        trial.report(v, s)
        frozen = study.trials[-1]
        # new pruner objects, as in other processes, deciding on the same step
        fresh = LCPFNPruner(max_resource=5, n_confirm=n_confirm, model=model)
        copied = pickle.loads(pickle.dumps(LCPFNPruner(max_resource=5, n_confirm=n_confirm, model=model)))
        decisions.append((study.pruner.prune(study, frozen), fresh.prune(study, frozen), copied.prune(study, frozen)))
    assert all(len(set(d)) == 1 for d in decisions)
    assert [d[0] for d in decisions] == expected


def test__pruner__model_is_loaded_lazily_once_across_threads(monkeypatch):
    lcpfn_predictor = pytest.importorskip("lcpfn.predictor")
    loads = []

    def slow_load(name=None, *args, **kwargs):
        loads.append(name)
        time.sleep(0.2)  # widen the race window
        return _GaussModel()

    monkeypatch.setattr(lcpfn_predictor.LCPFN, "from_pretrained", staticmethod(slow_load))
    pruner = LCPFNPruner(max_resource=5, target=0.5, model="some-model")
    assert loads == []  # constructing loads nothing
    study = optuna.create_study(direction="maximize", pruner=pruner)

    def objective(trial):
        x = trial.suggest_float("x", 0.0, 1.0)
        for s in range(1, 6):
            trial.report(x, s)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return 0.5

    study.optimize(objective, n_trials=8, n_jobs=4)
    assert loads == ["some-model"]
    assert len(study.trials) == 8
    assert {t.state for t in study.trials} <= {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED}
    assert pickle.loads(pickle.dumps(pruner))._loaded_model is None  # the copy reloads its own


# --- the real model --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_model():
    from lcpfn import LCPFN

    return LCPFN.from_pretrained()  # the shipped default model, as LCPFNPruner() uses


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test__pruner__real_model_prunes_far_worse_curve_and_keeps_better_one(real_model, direction):
    sign = 1.0 if direction == "maximize" else -1.0
    study = _study(direction, LCPFNPruner(max_resource=20, model=real_model))
    _complete(study, {s: sign * 10 * (1 - math.exp(-s / 4)) for s in range(1, 21)})  # final ~ +-9.93
    bad = study.ask()
    assert any(_report(bad, s, sign * 0.5) for s in range(1, 11))
    record = study.trials[-1].user_attrs[ATTR_KEY]
    assert record["pruned"] and record["p_improve"] < 0.05
    assert math.isfinite(record["median_final"])
    study.tell(bad, state=optuna.trial.TrialState.PRUNED)
    good = study.ask()
    assert not any(_report(good, s, sign * 10.5) for s in range(1, 11))
    assert ATTR_KEY not in study.trials[-1].user_attrs  # no check had P(improve) < 0.05


def test__pruner__real_model_full_study_ends_every_trial_complete_or_pruned(real_model):
    study = _study("minimize", LCPFNPruner(max_resource=15, n_warmup_steps=2, model=real_model))
    rng = np.random.default_rng(0)
    for _ in range(12):
        trial = study.ask()
        rate = trial.suggest_float("rate", 0.01, 1.0, log=True)
        state = optuna.trial.TrialState.COMPLETE
        for s in range(1, 16):
            loss = 2.0 * math.exp(-rate * s) + 0.1 + 0.01 * rng.standard_normal()
            if _report(trial, s, loss):
                state = optuna.trial.TrialState.PRUNED
                break
        study.tell(trial, loss if state == optuna.trial.TrialState.COMPLETE else None, state=state)
    states = [t.state for t in study.trials]
    assert set(states) <= {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED}
    assert optuna.trial.TrialState.PRUNED in states


# --- several processes on one study ----------------------------------------------------------
def _worker_module():
    spec = importlib.util.spec_from_file_location("_optuna_pruner_worker", WORKER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run_workers(storage_spec: str, n_workers: int = 3, n_trials: int = 4) -> None:
    worker = _worker_module()
    storage = worker.make_storage(storage_spec)
    study_name = f"lcpfn-{uuid.uuid4().hex[:8]}"
    optuna.create_study(study_name=study_name, storage=storage, direction="maximize")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, str(WORKER), "--storage", storage_spec, "--study", study_name, "--n-trials", str(n_trials)]
    procs = [
        subprocess.Popen([*cmd, "--seed", str(i)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for i in range(n_workers)
    ]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out
    trials = optuna.load_study(study_name=study_name, storage=storage).trials
    states = [t.state.name for t in trials]
    assert len(states) == n_workers * n_trials, states
    assert set(states) == {"COMPLETE", "PRUNED"}, states
    pruned = [t for t in trials if t.state.name == "PRUNED"]
    assert all(t.user_attrs[ATTR_KEY]["pruned"] and t.user_attrs[ATTR_KEY]["p_improve"] < 0.05 for t in pruned)


@pytest.mark.slow
def test__pruner__three_processes_share_a_journal_file_study(tmp_path):
    _run_workers(f"journal:{tmp_path / 'journal.log'}")


@pytest.mark.slow
def test__pruner__three_processes_share_a_sqlite_study(tmp_path):
    _run_workers(f"sqlite:///{tmp_path / 'study.db'}")


def _postgres_available() -> bool:
    try:
        import sqlalchemy

        engine = sqlalchemy.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
        with engine.connect():
            pass
        engine.dispose()
        return True
    except Exception:
        return False


@pytest.mark.slow
def test__pruner__three_processes_share_a_postgres_study():
    if not _postgres_available():
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable at {POSTGRES_URL} (scripts/setup-postgres.sh starts it)")
        pytest.skip(f"no PostgreSQL server at {POSTGRES_URL}; run scripts/setup-postgres.sh")
    _run_workers(POSTGRES_URL)
