"""The public forecasting API: shapes, units, horizons and every bad input."""

import numpy as np
import pytest
import torch

from lcpfn import LCPFN, CheckpointError, InputError, UnknownModelError
from lcpfn.errors import LCPFNError

CURVE = np.linspace(0.3, 0.6, 20)


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    return LCPFN.from_pretrained(tiny_model_dir)


def test__from_pretrained__shipped_models_load_offline():
    for name in ("default", "reference"):
        m = LCPFN.from_pretrained(name)
        assert m.native_length == 100
        fc = m.predict(CURVE, max_epochs=100)
        assert fc.median().shape == (80,)


def test__predict__one_curve_gives_1d_arrays_and_floats(model):
    fc = model.predict(CURVE, max_epochs=100)
    assert list(fc.epochs) == list(range(21, 101))
    for arr in (fc.quantile(0.9), fc.median(), fc.mean(), fc.log_prob(np.full(80, 0.5))):
        assert arr.shape == (80,) and np.all(np.isfinite(arr))
    assert isinstance(fc.prob_above(0.5), float)


def test__predict__many_curves_give_n_by_h_arrays(model):
    curves = np.stack([CURVE, CURVE * 0.8, CURVE * 1.1])
    fc = model.predict(curves, max_epochs=50)
    assert fc.median().shape == (3, 30) and fc.quantile(0.1).shape == (3, 30)
    assert fc.prob_above(0.5).shape == (3,)
    assert fc.prob_above(np.array([0.1, 0.5, 0.9])).shape == (3,)


def test__predict__batched_equals_one_at_a_time(model):
    curves = np.stack([CURVE, CURVE * 0.8, CURVE * 1.1])
    together = model.predict(curves, max_epochs=100, batch_size=2).median()
    alone = np.stack([model.predict(c, max_epochs=100).median() for c in curves])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test__quantiles__are_ordered_and_median_inside_interval(model):
    fc = model.predict(CURVE, max_epochs=100)
    lo, hi = fc.interval(0.9)
    assert np.all(lo <= fc.quantile(0.25)) and np.all(fc.quantile(0.25) <= fc.median())
    assert np.all(fc.median() <= fc.quantile(0.75)) and np.all(fc.quantile(0.75) <= hi)
    np.testing.assert_allclose(fc.cdf(fc.quantile(0.3)), 0.3, atol=1e-6)


def test__bounds__densities_are_in_the_callers_units(model):
    # The same curve in % with bounds (0, 100): quantiles scale by 100, densities by 1/100.
    fc1 = model.predict(CURVE, max_epochs=100)
    fc100 = model.predict(CURVE * 100, max_epochs=100, bounds=(0, 100))
    np.testing.assert_allclose(fc100.median(), fc1.median() * 100, rtol=1e-6)
    v = fc1.median()
    np.testing.assert_allclose(fc100.log_prob(v * 100), fc1.log_prob(v) - np.log(100), atol=1e-5)
    assert fc100.prob_above(55.0) == pytest.approx(fc1.prob_above(0.55), abs=1e-9)


def test__minimize__flips_the_curve_and_its_quantiles(model):
    loss = 1.0 - CURVE
    fmax = model.predict(CURVE, max_epochs=100)
    fmin = model.predict(loss, max_epochs=100, direction="minimize")
    np.testing.assert_allclose(fmin.quantile(0.1), 1.0 - fmax.quantile(0.9), atol=1e-6)
    np.testing.assert_allclose(fmin.log_prob(1.0 - fmax.median()), fmax.log_prob(fmax.median()), atol=1e-5)
    assert fmin.prob_improve(0.45) == pytest.approx(fmax.prob_above(0.55), abs=1e-9)
    assert fmin.prob_below(0.45) == pytest.approx(fmax.prob_above(0.55), abs=1e-9)


def test__minimize_with_bounds__maps_a_loss_into_the_unit_interval(model):
    loss = 2.0 - 1.5 * CURVE  # a loss in [0, 2.5]
    fc = model.predict(loss, max_epochs=100, direction="minimize", bounds=(0.0, 2.5))
    assert np.all(np.isfinite(fc.median()))
    grid = np.linspace(-20, 25, 450_001)  # wide: the tiny model's tail bins are wide
    density = np.exp(fc.log_prob_at(grid))
    assert np.trapezoid(density, grid) == pytest.approx(1.0, abs=1e-3)


def test__long_horizon__every_epoch_is_forecast(model):
    curve = np.linspace(0.2, 0.7, 300)
    fc = model.predict(curve, max_epochs=1000)
    assert fc.median().shape == (700,) and fc.epochs[0] == 301 and fc.epochs[-1] == 1000
    assert np.all(np.isfinite(fc.log_prob(fc.median())))


def test__long_horizon__context_is_subsampled_to_native_spacing():
    from lcpfn.predictor import _context_indices

    assert list(_context_indices(20, 1.0, 100)) == list(range(20))
    idx = _context_indices(300, 0.1, 100)  # 300 of 1000 epochs -> 30 points, every 10th epoch
    assert len(idx) == 30 and list(idx[:3]) == [9, 19, 29]
    assert len(_context_indices(5, 0.1, 100)) == 1  # always at least one observed point
    assert len(_context_indices(2000, 0.049, 100)) == 98


def test__log_prob_at__grid_at_an_epoch(model):
    fc = model.predict(np.stack([CURVE, CURVE]), max_epochs=100)
    out = fc.log_prob_at(np.linspace(0, 1, 11), epoch=50)
    assert out.shape == (2, 11)
    with pytest.raises(InputError, match="epoch"):
        fc.log_prob_at([0.5], epoch=10)


@pytest.mark.parametrize(
    "curves, kwargs, match",
    [
        ([], {}, "at least one"),
        (np.zeros((0, 5)), {}, "at least one"),
        ([0.1, float("nan"), 0.3], {}, "nan.*epoch 2"),
        ([0.1, float("inf")], {}, "inf"),
        (np.zeros((2, 3, 4)), {}, "1-D .* or 2-D"),
        (np.full(100, 0.5), {"max_epochs": 100}, "smaller than max_epochs"),
        ([0.5], {"max_epochs": 1}, "at least 2"),
        ([0.5], {"max_epochs": 2.5}, "integer"),
        ([[0.1, "a"]], {}, "numeric"),
        ([0.1, 0.2], {"direction": "up"}, "direction"),
        ([0.1, 0.2], {"bounds": (1, 0)}, "low < high"),
        ([0.1, 0.2], {"bounds": (0,)}, "pair"),
        ([85.0, 86.0], {"bounds": None}, "85.0 .* bounds"),
        ([0.5, -1.2], {"bounds": None}, "-1.2 .* bounds"),
        ([0.5, -1.2], {"bounds": (0, None)}, "-1.2 .* outside bounds"),
        ([0.5, 0.6], {"reading": "sideways"}, "reading"),
        ([[0.5, float("nan"), 0.6]], {}, "nan at curve 0, epoch 2, before the curve's last value"),
        ([[0.5, 0.6], []], {}, "curve 1 has 0 observed values"),
        ([np.full(5, 0.5), np.full(100, 0.5)], {}, "observed epochs of curve 1 \\(100\\) must be smaller"),
        ([0.1, 0.2], {"batch_size": 0}, "batch_size"),
    ],
)
def test__predict__bad_input_raises_a_named_error(model, curves, kwargs, match):
    kwargs = {"max_epochs": 100, **kwargs}
    with pytest.raises(InputError, match=match):
        model.predict(curves, **kwargs)


def test__forecast__bad_arguments_raise_named_errors(model):
    fc = model.predict(CURVE, max_epochs=100)
    with pytest.raises(InputError, match="probability"):
        fc.quantile(1.5)
    with pytest.raises(InputError, match="shape"):
        fc.log_prob(np.zeros(5))
    with pytest.raises(InputError, match="finite"):
        fc.log_prob(np.full(80, np.nan))
    with pytest.raises(InputError, match="threshold"):
        fc.prob_above(np.zeros(3))
    with pytest.raises(InputError, match="finite"):
        fc.prob_above(float("nan"))


def test__errors__are_value_errors():
    assert issubclass(InputError, ValueError) and issubclass(CheckpointError, LCPFNError)


def test__from_pretrained__unknown_name_lists_shipped_models():
    with pytest.raises(UnknownModelError, match="reference"):
        LCPFN.from_pretrained("no-such-model")


def test__from_pretrained__bad_device_is_named(tiny_model_dir):
    with pytest.raises(InputError, match="device"):
        LCPFN.from_pretrained(tiny_model_dir, device="tpu9")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test__predict__on_cuda_matches_cpu(tiny_model_dir):
    cpu = LCPFN.from_pretrained(tiny_model_dir).predict(CURVE, max_epochs=100).median()
    gpu = LCPFN.from_pretrained(tiny_model_dir, device="cuda").predict(CURVE, max_epochs=100).median()
    np.testing.assert_allclose(cpu, gpu, atol=1e-3)


def test__predict__noisy_values_slightly_outside_unit_interval_are_accepted(model, caplog):
    # the prior's noise carries observed values past [0, 1]; they must still be forecast
    fc = model.predict([0.95, 1.02, 1.3], max_epochs=10, bounds=None)
    assert np.all(np.isfinite(fc.median()))
    assert "outside [0, 1]" in caplog.text
    assert fc.bounds == (0.0, 1.0)


@pytest.mark.parametrize(
    "curve, direction, want",
    [
        ([0.2, 0.5, 0.9], "maximize", (0.0, 1.0)),  # an accuracy: the model's own scale
        ([0.9, 0.5, 0.2], "minimize", (0.0, 1.0)),  # an error rate in [0, 1]: 1 - y, as before
        ([2.3, 1.5, 1.2], "minimize", (0.0, None)),  # a loss
        ([40.0, 30.0, 25.0], "minimize", (0.0, None)),  # an error in %
        ([20.0, 50.0, 90.0], "maximize", (None, None)),  # anything else: inferred
        ([-5.0, -3.0, -1.0], "minimize", (None, None)),
    ],
)
def test__predict__default_bounds_follow_direction_and_values(model, curve, direction, want):
    fc = model.predict(curve, max_epochs=20, direction=direction)
    assert fc.bounds == want
    explicit = model.predict(curve, max_epochs=20, direction=direction, bounds=want)
    np.testing.assert_array_equal(fc.median(), explicit.median())


def test__predict__raw_loss_forecasts_without_bounds(model):
    loss = np.array([2.3, 1.9, 1.6, 1.4, 1.3, 1.25])
    fc = model.predict(loss, max_epochs=30, direction="minimize")
    assert fc.bounds == (0.0, None)
    assert np.all(np.isfinite(fc.quantile(0.05))) and np.all(np.isfinite(fc.quantile(0.95)))


def test__predict__mixed_lengths_are_one_call_and_match_one_call_per_curve(model):
    curves = [CURVE, CURVE[:4] * 0.9, CURVE[:1]]
    fc = model.predict(curves, max_epochs=30)
    assert fc.epochs[0] == 2 and fc.epochs[-1] == 30
    np.testing.assert_array_equal(fc.lengths, [len(CURVE), 4, 1])
    padded = np.full((3, len(CURVE)), np.nan)
    for i, c in enumerate(curves):
        padded[i, : len(c)] = c
    same = model.predict(padded, max_epochs=30)  # NaN-padded rows are the same call
    for i, c in enumerate(curves):
        one = model.predict(c, max_epochs=30)
        t = len(c)
        assert np.all(np.isnan(fc.median()[i, : t - 1]))  # epochs the curve has observed
        np.testing.assert_allclose(fc.median()[i, t - 1 :], one.median(), rtol=1e-6)
        np.testing.assert_allclose(same.quantile(0.9)[i, t - 1 :], one.quantile(0.9), rtol=1e-6)
        np.testing.assert_allclose(fc.mean()[i, t - 1 :], one.mean(), rtol=1e-6)
        assert fc.prob_above(0.7)[i] == pytest.approx(one.prob_above(0.7), rel=1e-6)
        np.testing.assert_allclose(fc.log_prob_at([0.5, 0.7])[i], one.log_prob_at([0.5, 0.7]), rtol=1e-6)
    values = np.where(np.isnan(fc.median()), 0.0, fc.median())
    lp = fc.log_prob(values)
    assert np.all(np.isnan(lp[1, :3])) and np.all(np.isfinite(lp[1, 3:]))
    at = fc.prob_above(0.7, epoch=3)  # curve 0 observed epoch 3: no probability for it
    assert np.isnan(at[0]) and np.isfinite(at[2])


def test__predict__dataframe_is_runs_as_columns(model):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"a": CURVE[:5], "b": list(CURVE[:3]) + [np.nan, np.nan]})
    fc = model.predict(df, max_epochs=20)
    np.testing.assert_array_equal(fc.lengths, [5, 3])
    np.testing.assert_allclose(fc.median()[1], model.predict(CURVE[:3], max_epochs=20).median(), rtol=1e-6)
    one = model.predict(pd.Series(CURVE[:5]), max_epochs=20)
    assert one.median().shape == (15,)



# --- every forecast is finite, or the call says why ----------------------------------------------
@pytest.mark.parametrize(
    "curve, kwargs, match",
    [
        ([0.5], {"bounds": (-1e308, 1e308)}, r"bounds must lie within ±1e\+150 .* \(-1e\+308, 1e\+308\)"),
        ([0.5], {"bounds": (0, 1e-320)}, r"bounds must be at least 1e-150 apart .* \(0, 1e-320\)"),
        ([1e308, 1.5e308], {"bounds": (0, None)}, r"curves must lie within ±1e\+150 .* 1e\+308 at epoch 1"),
        ([-1e308, 1e308], {"bounds": "infer"}, r"curves must lie within ±1e\+150 .* -1e\+308 at epoch 1"),
        ([[0.5, 0.6], [0.5, 2e150]], {"bounds": "infer"}, r"2e\+150 at curve 1, epoch 2"),
        ([0.5], {"max_epochs": 10**9}, "max_epochs must be at most 100000 but got 1000000000"),
        ([0.5], {"max_epochs": 2**62}, "max_epochs must be at most 100000"),
        ([0.5], {"max_epochs": np.int64(2**62)}, "max_epochs must be at most 100000"),
    ],
)
def test__predict__scales_that_would_overflow_are_refused_naming_the_value(model, curve, kwargs, match):
    kwargs = {"max_epochs": 2, **kwargs}
    with pytest.raises(InputError, match=match):
        model.predict(curve, **kwargs)


@pytest.mark.parametrize(
    "curve, kwargs",
    [
        ([1e150, 0.9e150], {"bounds": (0, None), "direction": "minimize"}),
        ([-1e150, 1e150], {"bounds": "infer"}),
        ([0.5, 0.5 + 1e-15], {"bounds": (0.5 - 1e-150, 0.5 + 1e-14)}),  # a known range just wide enough
        ([5e-324, 1e-323], {"bounds": "infer"}),
        ([3.0], {"bounds": (-1e150, 1e150)}),
    ],
)
def test__predict__extreme_but_accepted_scales_give_finite_forecasts(model, curve, kwargs):
    fc = model.predict(curve, max_epochs=10, **kwargs)
    for a in (fc.quantile(0.01), fc.median(), fc.quantile(0.99), fc.mean()):
        assert np.all(np.isfinite(a))
    assert np.all(fc.quantile(0.01) <= fc.quantile(0.99))


# --- forecasts keep to the caller's bounds --------------------------------------------------------
def test__bounds__quantiles_and_means_stay_within_both_known_bounds(model):
    fc = model.predict([98.0, 99.0], max_epochs=30, bounds=(0, 100))  # was q99 = 101.9
    for a in (fc.quantile(0.001), fc.quantile(0.99), fc.quantile(0.999), fc.median(), fc.mean()):
        assert np.all((a >= 0) & (a <= 100)), a
    assert np.all(fc.quantile(0.999) < 100)  # truncated, not clipped: no pile-up at the bound


def test__bounds__a_loss_with_a_known_floor_is_never_forecast_negative(model):
    loss = [2.0, 1.0, 0.5, 0.2, 0.1]
    fc = model.predict(loss, max_epochs=40, direction="minimize", bounds=(0, None))
    assert np.all(fc.quantile(0.01) >= 0) and np.all(fc.mean() >= 0)
    assert np.all(np.isneginf(fc.log_prob(np.full(35, -0.01))))
    assert np.all(fc.cdf(np.full(35, -1e-9)) == 0.0)
    auto = model.predict(loss, max_epochs=40, direction="minimize")  # "auto" is (0, None) for a loss
    np.testing.assert_array_equal(auto.quantile(0.01), fc.quantile(0.01))


@pytest.mark.parametrize(
    "curve, direction, bounds",
    [
        ([0.6, 0.8, 0.9], "maximize", (0.0, 1.0)),
        ([30.0, 20.0, 12.0], "minimize", (0.0, 50.0)),
        ([2.0, 1.0, 0.5], "minimize", (0.0, None)),
        ([60.0, 75.0, 80.0], "maximize", (None, 100.0)),
        ([0.2, 0.4, 0.5], "maximize", (0.0, None)),
    ],
)
def test__bounds__log_prob_is_a_proper_density_on_the_bounds(model, curve, direction, bounds):
    fc = model.predict(curve, max_epochs=20, direction=direction, bounds=bounds)
    low, high = bounds
    span = 100.0 * max(abs(v) for v in curve)
    # the tiny model's tail bins are wide: integrate far out where a side is not known
    grid = np.linspace(low if low is not None else -span, high if high is not None else span, 1_000_001)
    for epoch in (4, 20):
        density = np.exp(fc.log_prob_at(grid, epoch=epoch))
        assert np.trapezoid(density, grid) == pytest.approx(1.0, abs=2e-3)
    outside = [v for v in (None if low is None else low - 1e-9, None if high is None else high + 1e-9) if v is not None]
    assert np.all(np.isneginf(fc.log_prob_at(outside)))
    # the CDF is that of the truncated marginal: 0 and 1 at the known bounds, its quantiles invert it
    if low is not None:
        assert np.all(fc.cdf(np.full(17, low)) <= 1e-12)
    if high is not None:
        assert np.all(fc.cdf(np.full(17, high)) == 1.0)
    np.testing.assert_allclose(fc.cdf(fc.quantile(0.3)), 0.3, atol=1e-6)


def test__bounds__none_and_inferred_sides_are_not_truncated(model):
    fc = model.predict([0.95, 0.99], max_epochs=20, bounds=None)
    assert not fc.transform.has_limits
    assert np.any(fc.quantile(0.999) > 1.0)  # values as they are: the prior's noise goes past 1
    inferred = model.predict([60.0, 75.0, 80.0], max_epochs=20, bounds="infer")
    assert not inferred.transform.has_limits


def test__bounds__a_curve_far_beyond_its_bounds_is_clipped_without_nan(model):
    # observed values may sit up to 100 % of the range outside two known bounds (noise); a last
    # value of 199 with bounds (0, 100) leaves the Gaussian baseline ~1e-90 of its mass inside
    from lcpfn.baselines import LastValuePredictor
    from lcpfn.forecast import MIN_MASS

    for predictor in (LastValuePredictor(), model):
        fc = predictor.predict([150.0, 199.0], max_epochs=12, bounds=(0, 100))
        qs = np.stack([fc.quantile(q) for q in (0.01, 0.5, 0.99)])
        assert np.all(np.isfinite(qs)) and np.all((qs >= 0) & (qs <= 100)) and np.all(np.diff(qs, axis=0) >= 0)
        assert np.all(np.isfinite(fc.mean())) and np.all((fc.mean() >= 0) & (fc.mean() <= 100))
        lp = fc.log_prob(np.full(10, 99.0))
        assert not np.any(np.isnan(lp)) and np.all(lp < np.inf)
        assert not np.any(np.isnan(fc.cdf(np.full(10, 99.0))))
    fc = LastValuePredictor().predict([150.0, 199.0], max_epochs=12, bounds=(0, 100))
    assert np.all(fc._masses()[2] < MIN_MASS)  # the clipped branch was the one taken
    np.testing.assert_array_equal(fc.quantile(0.01), 100.0)
    np.testing.assert_array_equal(fc.mean(), 100.0)


# --- limits, checked before anything is allocated ---------------------------------------------------
def test__limits__curves_per_call_length_and_marginals(model):
    with pytest.raises(InputError, match="1000001 curves, more than the 1000000"):
        model.predict([[0.5]] * 1_000_001, max_epochs=10)
    with pytest.raises(InputError, match="100001 observed values in a curve, more than the 100000"):
        model.predict(np.full(100_001, 0.5), max_epochs=100_000)
    with pytest.raises(InputError, match="1002 curves of up to 100000 values"):
        model.predict([np.full(100_000, 0.5)] + [[0.5]] * 1001, max_epochs=100_000)  # not padded first
    with pytest.raises(InputError, match="marginals, more than the 100000000"):
        model.predict(np.full((1001, 1), 0.5), max_epochs=100_000)


def test__limits__the_streaming_path_may_lift_the_curve_count():
    from lcpfn.validation import check_curves

    _, lengths, _ = check_curves(np.full((1_000_001, 1), 0.5), max_epochs=3, max_curves=None)
    assert lengths.shape == (1_000_001,)


def test__limits__docs_list_every_limit_with_its_value():
    from pathlib import Path

    from lcpfn import limits

    text = (Path(__file__).resolve().parents[1] / "docs" / "limits.md").read_text()
    names = [n for n in dir(limits) if n.startswith(("MAX_", "MIN_"))]
    assert len(names) >= 15
    for name in names:
        value = getattr(limits, name)
        shown = f"{value:g}" if isinstance(value, float) else f"{value:,}"
        assert f"`{name}`" in text and shown in text, (name, shown)
