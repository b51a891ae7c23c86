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

