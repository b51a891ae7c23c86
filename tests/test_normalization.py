"""Normalisation into model space: known, one-sided and inferred bounds (lcpfn.validation)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from lcpfn import LCPFN, InputError
from lcpfn.baselines import LastValuePredictor, Pow3FitPredictor
from lcpfn.normalization import check_bounds, infer_transform, unit_transform
from lcpfn.validation import prepare_curves

# A loss falling from 2.5 towards 1 and an accuracy in % rising from 60 towards 80.
EPOCHS = np.arange(1, 101)
LOSS = 1.0 + 1.5 * EPOCHS ** -0.5
ACC_PCT = 80.0 - 20.0 * EPOCHS ** -0.7


@pytest.fixture(scope="module")
def reference():
    return LCPFN.from_pretrained("reference")


def _transform(curves, *, direction="maximize", bounds="infer"):
    arr = np.atleast_2d(np.asarray(curves, dtype=np.float64))
    return infer_transform(arr, direction=direction, bounds=check_bounds(bounds))


# --- the formulas, exactly --------------------------------------------------------------------
def test__infer__loss_with_known_floor_is_one_minus_y_over_1_25_max():
    prefix = LOSS[:20]
    t = _transform(prefix, direction="minimize", bounds=(0, None))
    np.testing.assert_allclose(t.to_model(prefix[None]), 1 - prefix[None] / (1.25 * prefix.max()), rtol=1e-14)
    np.testing.assert_allclose(t.to_model(np.array([[0.0, prefix.max()]])), [[1.0, 0.2]], atol=1e-14)


def test__infer__good_bound_maps_to_one_and_worst_to_0_2_when_maximising():
    prefix = ACC_PCT[:10]
    t = _transform(prefix, bounds=(None, 100))
    np.testing.assert_allclose(t.to_model(np.array([[100.0, prefix.min()]])), [[1.0, 0.2]], atol=1e-14)
    assert t.scale[0] > 0


def test__infer__bad_bound_maps_to_zero_and_best_to_0_8():
    prefix = ACC_PCT[:10]
    t = _transform(prefix, bounds=(0, None))
    np.testing.assert_allclose(t.to_model(np.array([[0.0, prefix.max()]])), [[0.0, 0.8]], atol=1e-14)
    loss = LOSS[:10]  # a minimised metric with only a known worst value (its bad bound, high)
    t = _transform(loss, direction="minimize", bounds=(None, 3.0))
    np.testing.assert_allclose(t.to_model(np.array([[3.0, loss.min()]])), [[0.0, 0.8]], atol=1e-14)


@pytest.mark.parametrize("bounds", ["infer", (None, None)])
def test__infer__nothing_known_maps_worst_to_0_3_and_best_to_0_5(bounds):
    prefix = ACC_PCT[:20]  # range 60.0..77.4: above the floor 0.1 * 77.4
    t = _transform(prefix, bounds=bounds)
    np.testing.assert_allclose(t.to_model(np.array([[prefix.min(), prefix.max()]])), [[0.3, 0.5]], atol=1e-14)
    loss = LOSS[:20]
    t = _transform(loss, direction="minimize", bounds=bounds)
    np.testing.assert_allclose(t.to_model(np.array([[loss.max(), loss.min()]])), [[0.3, 0.5]], atol=1e-14)


def test__infer__minimize_flips_so_higher_is_better_in_model_space(reference):
    for bounds in ["infer", (0, None), (None, 3.0)]:
        t = _transform(LOSS[:20], direction="minimize", bounds=bounds)
        z = t.to_model(LOSS[None, :20])[0]
        assert t.scale[0] < 0 and np.all(np.diff(z) > 0)  # a falling loss rises in model space
    # a minimised loss is forecast exactly as the maximised negative loss, mirrored
    fmin = reference.predict(LOSS[:20], max_epochs=100, direction="minimize", bounds="infer")
    fmax = reference.predict(-LOSS[:20], max_epochs=100, direction="maximize", bounds="infer")
    np.testing.assert_allclose(fmin.transform.scale, -fmax.transform.scale, rtol=1e-15)
    np.testing.assert_allclose(fmin.quantile(0.1), -fmax.quantile(0.9), rtol=1e-12)
    np.testing.assert_allclose(fmin.log_prob(LOSS[20:]), fmax.log_prob(-LOSS[20:]), atol=1e-12)


def test__infer__is_computed_from_each_curves_prefix_only(reference):
    prefix = LOSS[:20]
    other_future = np.stack([LOSS, np.concatenate([prefix, np.full(80, 50.0)])])  # same prefix
    both = _transform(other_future[:, :20], direction="minimize", bounds=(0, None))
    assert both.scale[0] == both.scale[1] and both.shift[0] == both.shift[1]
    # the forecast's transform is the prefix's, and each curve's ignores the other curves
    batch = np.stack([prefix, prefix * 3.0, prefix + 7.0])
    fc = reference.predict(batch, max_epochs=100, direction="minimize", bounds=(0, None))
    for i in range(3):
        alone = _transform(batch[i], direction="minimize", bounds=(0, None))
        assert fc.transform.scale[i] == alone.scale[0] and fc.transform.shift[i] == alone.shift[0]
    # changing an observed value that sets the scale does change it
    changed = prefix.copy()
    changed[0] = 4.0
    assert _transform(changed, direction="minimize", bounds=(0, None)).scale[0] != both.scale[0]
    changed_infer = prefix.copy()
    changed_infer[-1] = 0.5
    assert _transform(changed_infer, direction="minimize").shift[0] != _transform(prefix, direction="minimize").shift[0]


@pytest.mark.parametrize(
    "bounds, direction",
    [("infer", "maximize"), ((0, None), "maximize"), ((None, 100), "maximize"), ("infer", "minimize"),
     ((0, None), "minimize")],
)
def test__infer__is_affine_and_round_trips(bounds, direction):
    base = ACC_PCT[:15] if direction == "maximize" else LOSS[:15]
    curves = np.stack([base, base * 0.9])
    t = _transform(curves, direction=direction, bounds=bounds)
    y = np.stack([np.linspace(-5, 120, 7)] * 2)
    z = t.to_model(y)
    np.testing.assert_allclose(np.diff(z, 2, axis=1), 0.0, atol=1e-12)  # equally spaced in, out
    np.testing.assert_allclose(t.to_caller(z), y, rtol=1e-13, atol=1e-12)
    assert np.all(np.isfinite(t.scale)) and np.all(t.scale != 0)


# --- known bounds: unchanged ------------------------------------------------------------------
def test__known_bounds__are_todays_map():
    y = np.stack([ACC_PCT[:10]])
    for direction, want_scale, want_shift in [("maximize", 0.01, 0.0), ("minimize", -0.01, 1.0)]:
        t = _transform(y, direction=direction, bounds=(0, 100))
        assert t.scale[0] == want_scale and t.shift[0] == want_shift
        u = unit_transform(y, direction=direction, bounds=(0.0, 100.0))
        assert t.scale[0] == u.scale[0] and t.shift[0] == u.shift[0]
    t = _transform(np.array([[0.3, 0.4]]), bounds=None)
    assert t.scale[0] == 1.0 and t.shift[0] == 0.0


# --- the Jacobian -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "curve, direction, bounds", [(LOSS[:20], "minimize", (0, None)), (ACC_PCT[:20], "maximize", "infer")]
)
def test__jacobian__density_in_caller_units_integrates_to_one(reference, curve, direction, bounds):
    fc = reference.predict(curve, max_epochs=100, direction=direction, bounds=bounds)
    scale, shift = fc.transform.scale[0], fc.transform.shift[0]
    assert abs(scale) != 1.0  # a real change of units
    # a grid fine in model space where the bins are (~1e-3 wide), out to 60 in the half-normal
    # tails (scales 9.5 and 7.9: beyond 6 of them), mapped into caller units
    b = fc.bar.borders.double().numpy()
    z = np.unique(np.concatenate([np.linspace(-60, b[1], 20_001), np.linspace(b[1], b[-2], 600_001),
                                  np.linspace(b[-2], 60, 20_001)]))
    y = np.sort((z - shift) / scale)
    for epoch in (21, 60, 100):
        density = np.exp(fc.log_prob_at(y, epoch=epoch))
        # measured within 2e-6 of 1; without the Jacobian it would be 1 / |scale| (3.1 or 88)
        assert np.trapezoid(density, y) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize(
    "curve, direction, bounds",
    [(LOSS[:20], "minimize", (0, None)), (ACC_PCT[:20], "maximize", "infer"), (ACC_PCT[:20], "maximize", (0, None))],
)
def test__jacobian__log_prob_is_model_space_log_density_plus_log_abs_scale(reference, curve, direction, bounds):
    fc = reference.predict(curve, max_epochs=100, direction=direction, bounds=bounds)
    t = fc.transform
    future = LOSS[20:] if direction == "minimize" else ACC_PCT[20:]
    # the same network inputs, given in model space with the identity map (bounds=None: no limits)
    fz = reference.predict(t.to_model(curve[None])[0], max_epochs=100, direction="maximize", bounds=None)
    assert fz.transform.scale[0] == 1.0 and fz.transform.shift[0] == 0.0 and not fz.transform.has_limits
    z_future = t.to_model(future[None])[0]
    np.testing.assert_array_equal(fz.logits.numpy(), fc.logits.numpy())
    # a known side truncates the marginal: the density is renormalised by its mass inside
    lo, hi = (float(v[0]) for v in t.z_limits())
    h = len(fc.epochs)
    mass = (fz.cdf(np.full(h, hi)) if np.isfinite(hi) else 1.0) - (fz.cdf(np.full(h, lo)) if np.isfinite(lo) else 0.0)
    assert t.has_limits == (bounds != "infer")
    want = fz.log_prob(z_future) + np.log(abs(t.scale[0])) - np.log(mass)
    np.testing.assert_allclose(fc.log_prob(future), want, rtol=0, atol=1e-12)


# --- degenerate prefixes ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "prefix, direction, bounds, want_scale",
    [
        ([0.5], "maximize", "infer", 0.2 / 0.05),  # one point: span = 0.1 * |0.5|
        ([0.5] * 8, "maximize", "infer", 0.2 / 0.05),  # constant
        ([2.0] * 8, "minimize", "infer", -0.2 / 0.2),
        ([0.0] * 8, "maximize", "infer", 0.2),  # all zeros: span 1
        ([0.0] * 8, "minimize", (0, None), -0.8),  # a loss sitting on its bound 0: span 1
        ([100.0] * 5, "maximize", (None, 100), 0.8 / 10.0),  # on its good bound: span 0.1 * 100
        ([0.0, 0.0], "maximize", (0, None), 0.8),  # on its bad bound, all zeros
        ([-3.0], "maximize", (-3.0, None), 0.8 / 0.3),
    ],
)
def test__degenerate_prefixes__get_the_documented_finite_scale(prefix, direction, bounds, want_scale):
    t = _transform(prefix, direction=direction, bounds=bounds)
    assert np.isfinite(t.shift[0])
    assert t.scale[0] == pytest.approx(want_scale, rel=1e-12)


def test__degenerate_prefixes__are_forecast(reference):
    for prefix, kwargs in [([0.0], {}), ([5.0] * 10, {}), ([0.0] * 10, {"direction": "minimize", "bounds": (0, None)}),
                           ([1e-300, 2e-300], {}), ([5e-324, 1e-323], {})]:
        bounds = kwargs.pop("bounds", "infer")
        fc = reference.predict(prefix, max_epochs=50, bounds=bounds, **kwargs)
        assert np.all(np.isfinite(fc.transform.scale)) and np.all(fc.transform.scale != 0)
        assert np.all(np.isfinite(fc.median())) and np.all(np.isfinite(fc.log_prob(fc.median())))


# --- bad bounds and values beyond them ----------------------------------------------------------
@pytest.mark.parametrize(
    "bounds, match",
    [
        (("a", None), "pair"),
        ((None, None, 1), "pair"),
        ((1, 1), "low < high"),
        ((2, 1), "low < high"),
        ("guess", "'infer'"),
        ("", "'infer'"),
        ((0, float("inf")), "None, not infinity"),
        ((float("nan"), None), "finite"),
        ((None,), "pair"),
        (5, "pair"),
        ((None, "x"), "pair"),
    ],
)
def test__bad_bounds__raise_input_error_naming_the_value(reference, bounds, match):
    with pytest.raises(InputError, match=match) as info:
        check_bounds(bounds)
    assert repr(bounds) in str(info.value)
    with pytest.raises(InputError, match=re.escape(repr(bounds))):
        reference.predict(ACC_PCT[:10], max_epochs=100, bounds=bounds)


@pytest.mark.parametrize(
    "curve, direction, bounds, value",
    [
        ([2.0, 1.0, -0.5], "minimize", (0, None), "-0.5"),
        ([60.0, 101.0], "maximize", (None, 100), "101.0"),
        ([0.2, -0.01], "maximize", (0, None), "-0.01"),
        ([2.0, 3.5], "minimize", (None, 3.0), "3.5"),
    ],
)
def test__values_beyond_a_known_bound__raise_naming_the_value(reference, curve, direction, bounds, value):
    with pytest.raises(InputError, match=rf"{re.escape(value)} at epoch \d+, outside bounds"):
        reference.predict(curve, max_epochs=100, direction=direction, bounds=bounds)


def test__values_outside_two_known_bounds__still_raise_as_before(reference):
    with pytest.raises(InputError, match=r"250.0 .* bounds=\(0.0, 100.0\)"):
        reference.predict([50.0, 250.0], max_epochs=100, bounds=(0, 100))


def test__check_bounds__accepted_forms():
    assert check_bounds(None) is None
    assert check_bounds("infer") == (None, None)
    assert check_bounds((None, None)) == (None, None)
    assert check_bounds([0, None]) == (0.0, None)
    assert check_bounds((None, np.float32(2))) == (None, 2.0)
    assert check_bounds(np.array([0, 100])) == (0.0, 100.0)


# --- the baselines share it -------------------------------------------------------------------
@pytest.mark.parametrize("bounds", ["infer", (0, None), (None, None)])
def test__baselines__accept_the_new_bounds(bounds):
    fc = LastValuePredictor().predict(LOSS[:20], max_epochs=50, direction="minimize", bounds=bounds)
    # the last value persists in model space, so in caller units too: the round trip is exact
    np.testing.assert_allclose(fc.median(), LOSS[19], rtol=1e-12)
    t = prepare_curves(LOSS[:20], max_epochs=50, direction="minimize", bounds=bounds).transform
    np.testing.assert_array_equal(fc.transform.scale, t.scale)
    pow3 = Pow3FitPredictor().predict(ACC_PCT[:20], max_epochs=50, bounds=bounds)
    assert np.all(np.isfinite(pow3.median())) and np.all(np.isfinite(pow3.log_prob(ACC_PCT[20:50])))
    np.testing.assert_allclose(pow3.median()[-1], ACC_PCT[49], rtol=0.02)


# --- known bounds truncate every forecast (lcpfn.forecast.Forecast) --------------------------------
def _gaussian_forecast(loc, std, transform):
    from lcpfn.baselines import GaussianForecast

    n, h = np.shape(loc)
    return GaussianForecast(mean=np.asarray(loc, dtype=float), std=np.asarray(std, dtype=float),
                            epochs=np.arange(2, 2 + h), observed=np.zeros((n, 1)), transform=transform,
                            direction="maximize" if transform.scale[0] > 0 else "minimize", squeeze=False)


@pytest.mark.parametrize(
    "limits, scale, shift",
    [((0.0, 100.0), 0.01, 0.0), ((0.0, None), 0.5, 0.0), ((None, 4.0), 0.25, 0.0), ((0.0, 10.0), -0.1, 1.0),
     ((0.0, None), -0.4, 1.0)],
)
def test__truncation__is_the_truncated_normal_for_a_gaussian_marginal(limits, scale, shift):
    from scipy import stats

    from lcpfn.normalization import ValueTransform

    loc, std = np.array([[0.9, 0.5, 1.1]]), np.array([[0.2, 0.05, 0.3]])
    t = ValueTransform(np.array([scale]), np.array([shift]), limits)
    fc = _gaussian_forecast(loc, std, t)
    # the same marginals in caller units: N((loc - shift) / scale, (std / scale)^2), truncated to limits
    mu, sd = (loc - shift) / scale, std / abs(scale)
    low = -np.inf if limits[0] is None else limits[0]
    high = np.inf if limits[1] is None else limits[1]
    want = stats.truncnorm((low - mu) / sd, (high - mu) / sd, loc=mu, scale=sd)
    for q in (0.001, 0.1, 0.5, 0.9, 0.999):  # the generic inverse CDF: bisection, exact to ~1e-15 of its bracket
        np.testing.assert_allclose(fc.quantile(q), want.ppf(q), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(fc.mean(), want.mean(), rtol=0, atol=2e-5 * sd.max())  # the generic trapezoid mean
    y = want.ppf(np.array([[0.2], [0.7], [0.95]]).T)
    np.testing.assert_allclose(fc.log_prob(y), want.logpdf(y), rtol=1e-10)
    np.testing.assert_allclose(fc.cdf(y), want.cdf(y), rtol=1e-10, atol=1e-14)
    assert fc.prob_above(float(y[0, 2])) == pytest.approx(float(want.sf(y)[0, 2]), rel=1e-9)


def test__truncation__quantiles_are_non_decreasing_in_q_to_the_last_bit():
    from lcpfn.normalization import ValueTransform

    rng = np.random.default_rng(0)
    loc, std = rng.uniform(-0.5, 1.5, (4, 30)), rng.uniform(1e-3, 0.5, (4, 30))
    fc = _gaussian_forecast(loc, std, ValueTransform(np.full(4, 0.01), np.zeros(4), (0.0, 100.0)))
    qs = np.stack([fc.quantile(q) for q in np.linspace(0.001, 0.999, 200)])
    assert np.all(np.diff(qs, axis=0) >= 0) and np.all((qs >= 0) & (qs <= 100))


def test__truncation__bar_forecast_mean_is_the_truncated_mean(reference):
    import torch

    fc = reference.predict(ACC_PCT[:10], max_epochs=60, bounds=(0, 100))
    lo, hi = fc.transform.z_limits()
    exact = fc.bar.mean_between_probs(fc.bar.probs(fc.logits), torch.tensor(lo)[:, None], torch.tensor(hi)[:, None])
    # within 1e-5 of the model-space range (the generic trapezoid mean's accuracy; 0 for an exact override)
    np.testing.assert_allclose(fc.mean(), fc.transform.to_caller(exact.numpy())[0], rtol=0, atol=1e-5 * 100)


def test__truncation__mixed_lengths_keep_to_the_bounds_and_match_one_call_per_curve(reference):
    curves = [LOSS[:20], LOSS[:5] * 1.3]
    fc = reference.predict(curves, max_epochs=40, direction="minimize", bounds=(0, None))
    for i, c in enumerate(curves):
        one = reference.predict(c, max_epochs=40, direction="minimize", bounds=(0, None))
        t = len(c)
        np.testing.assert_allclose(fc.quantile(0.02)[i, t - 5:], one.quantile(0.02), rtol=1e-9)
        np.testing.assert_allclose(fc.mean()[i, t - 5:], one.mean(), rtol=1e-9)
        np.testing.assert_allclose(fc.log_prob_at([0.5, 1.0])[i], one.log_prob_at([0.5, 1.0]), rtol=1e-9)
    assert np.nanmin(fc.quantile(0.001)) >= 0.0


def test__check_transform__refuses_a_map_that_cannot_come_back_finite():
    from lcpfn.normalization import ValueTransform, check_transform

    check_transform(ValueTransform(np.array([1e150, -1e-150]), np.array([0.0, 1.0])))
    for scale, shift in [(0.0, 0.0), (1e-303, 0.0), (np.inf, 0.0), (1.0, np.nan), (1e-10, 1e300)]:
        with pytest.raises(InputError, match=r"curve 1 cannot be forecast in float64: .* scale="):
            check_transform(ValueTransform(np.array([1.0, scale]), np.array([0.0, shift])))
