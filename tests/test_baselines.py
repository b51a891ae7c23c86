"""Naive baselines: Gaussian forecast math, the two predictors, input validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from lcpfn import Forecast
from lcpfn.baselines import GaussianForecast, LastValuePredictor, Pow3FitPredictor, noise_std
from lcpfn.errors import InputError
from lcpfn.normalization import ValueTransform

PREDICTORS = [LastValuePredictor, Pow3FitPredictor]


def _gaussian(mean, std, *, scale=1.0, shift=0.0, direction="maximize") -> GaussianForecast:
    mean = np.atleast_2d(mean)
    n, h = mean.shape
    return GaussianForecast(
        mean=mean,
        std=np.atleast_2d(std),
        epochs=np.arange(11, 11 + h),
        observed=np.zeros((n, 10)),
        transform=ValueTransform(np.full(n, scale), np.full(n, shift)),
        direction=direction,
        squeeze=False,
    )


def test__gaussian_forecast__matches_scipy_norm():
    fc = _gaussian([[0.2, 0.5]], [[0.1, 0.05]])
    y = np.array([[0.25, 0.4]])
    want = stats.norm.logpdf(y, [[0.2, 0.5]], [[0.1, 0.05]])
    np.testing.assert_allclose(fc.log_prob(y), want, rtol=1e-12)
    np.testing.assert_allclose(fc.cdf(y), stats.norm.cdf(y, [[0.2, 0.5]], [[0.1, 0.05]]), rtol=1e-12)
    np.testing.assert_allclose(fc.quantile(0.9), stats.norm.ppf(0.9, [[0.2, 0.5]], [[0.1, 0.05]]), rtol=1e-12)
    np.testing.assert_allclose(fc.mean(), [[0.2, 0.5]])
    np.testing.assert_allclose(fc.median(), [[0.2, 0.5]])
    grid = np.array([0.4, 0.5, 0.6])
    np.testing.assert_allclose(fc.log_prob_at(grid), stats.norm.logpdf(grid, 0.5, 0.05)[None], rtol=1e-12)
    np.testing.assert_allclose(fc.prob_above(0.55), [stats.norm.sf(0.55, 0.5, 0.05)], rtol=1e-12)


def test__gaussian_forecast__decreasing_transform_flips_quantiles_and_adds_jacobian():
    # caller units y in [0, 10] minimised: z = (10 - y) / 10
    fc = _gaussian([[0.7]], [[0.02]], scale=-0.1, shift=1.0, direction="minimize")
    # y = 10 - 10 z  ~  N(3, 0.2^2)
    np.testing.assert_allclose(fc.quantile(0.9), [[stats.norm.ppf(0.9, 3.0, 0.2)]], rtol=1e-12)
    np.testing.assert_allclose(fc.log_prob([[3.1]]), [[stats.norm.logpdf(3.1, 3.0, 0.2)]], rtol=1e-12)
    np.testing.assert_allclose(fc.cdf([[3.1]]), [[stats.norm.cdf(3.1, 3.0, 0.2)]], rtol=1e-12)
    assert fc.prob_improve(3.1) == pytest.approx(stats.norm.cdf(3.1, 3.0, 0.2), rel=1e-12)


def test__gaussian_forecast__rejects_nonpositive_std():
    with pytest.raises(ValueError, match="std"):
        _gaussian([[0.5]], [[0.0]])


def test__noise_std__recovers_white_noise_within_5_percent():
    rng = np.random.default_rng(0)
    z = 0.5 + 0.001 * np.arange(2000) / 2000 + 0.03 * rng.standard_normal((1, 2000))
    assert noise_std(z, min_std=1e-6)[0] == pytest.approx(0.03, rel=0.05)


def test__noise_std__floors_short_and_noiseless_curves():
    np.testing.assert_array_equal(noise_std(np.array([[0.1, 0.2, 0.3]]), min_std=0.02), [0.02])
    np.testing.assert_array_equal(noise_std(np.linspace(0, 1, 10)[None], min_std=0.02), [0.02])


def test__last_value__predicts_the_last_value_with_floor_std():
    fc = LastValuePredictor(min_std=0.01).predict([0.1, 0.2, 0.3, 0.4, 0.5], max_epochs=8)
    assert isinstance(fc, Forecast)
    np.testing.assert_array_equal(fc.epochs, [6, 7, 8])
    np.testing.assert_allclose(fc.median(), [0.5, 0.5, 0.5])
    y = np.array([0.5, 0.51, 0.48])
    np.testing.assert_allclose(fc.log_prob(y), stats.norm.logpdf(y, 0.5, 0.01), rtol=1e-12)


def test__last_value__bounds_and_minimize_map_back_to_caller_units():
    losses = np.array([[9.0, 8.0, 7.0, 6.0, 5.0]])  # a loss in [0, 10]; equal steps: no noise
    fc = LastValuePredictor(min_std=0.01).predict(losses, max_epochs=7, direction="minimize", bounds=(0, 10))
    np.testing.assert_allclose(fc.median(), [[5.0, 5.0]])
    # model-space std 0.01 is 0.1 in caller units
    np.testing.assert_allclose(fc.log_prob([[5.2, 4.9]]), stats.norm.logpdf([[5.2, 4.9]], 5.0, 0.1), rtol=1e-12)
    assert fc.prob_improve(4.9) == pytest.approx(stats.norm.cdf(4.9, 5.0, 0.1), rel=1e-12)


def test__pow3_fit__recovers_a_noiseless_pow3_curve():
    t = np.arange(1, 101, dtype=np.float64)
    truth = 0.8 - 0.5 * t ** (-0.7)
    pred = Pow3FitPredictor(min_std=0.005)
    fc = pred.predict(truth[:30], max_epochs=100)
    np.testing.assert_allclose(fc.mean(), truth[30:], atol=1e-6)
    np.testing.assert_allclose(fc.quantile(0.8) - fc.median(), 0.005 * stats.norm.ppf(0.8), rtol=1e-9)
    np.testing.assert_array_equal(pred.last_fallbacks, [False])


def test__pow3_fit__std_is_the_residual_std_of_a_noisy_curve():
    rng = np.random.default_rng(1)
    t = np.arange(1, 61, dtype=np.float64)
    y = 0.9 - 0.6 * t ** (-0.5) + 0.02 * rng.standard_normal(60)
    fc = Pow3FitPredictor(min_std=1e-4).predict(y[:50], max_epochs=60)
    std = (fc.quantile(stats.norm.cdf(1.0)) - fc.median())[0]
    assert std == pytest.approx(0.02, rel=0.25)  # 47 residual degrees of freedom


def test__pow3_fit__falls_back_to_last_value_when_too_short_or_failing():
    short = np.array([[0.2, 0.4, 0.5], [0.1, 0.3, 0.35]])
    pred = Pow3FitPredictor()
    fc = pred.predict(short, max_epochs=10)
    np.testing.assert_allclose(fc.median(), np.repeat(short[:, -1:], 7, axis=1))
    np.testing.assert_array_equal(pred.last_fallbacks, [True, True])
    t = np.arange(1, 21, dtype=np.float64)
    curve = 0.8 - 0.5 * t ** (-0.7)
    starved = Pow3FitPredictor(max_nfev=1)  # curve_fit raises: the budget is exhausted
    fc = starved.predict(curve, max_epochs=30)
    np.testing.assert_allclose(fc.median(), np.full(10, curve[-1]))
    np.testing.assert_array_equal(starved.last_fallbacks, [True])


@pytest.mark.parametrize("cls", PREDICTORS)
def test__baselines__shapes_for_1d_and_2d_input(cls):
    rng = np.random.default_rng(0)
    curves = np.clip(np.linspace(0.2, 0.7, 12) + 0.01 * rng.standard_normal((3, 12)), 0, 1)
    fc2 = cls().predict(curves, max_epochs=20)
    assert fc2.quantile(0.1).shape == fc2.mean().shape == (3, 8)
    assert fc2.log_prob(np.full((3, 8), 0.7)).shape == (3, 8)
    assert fc2.log_prob_at(np.linspace(0, 1, 5)).shape == (3, 5)
    assert fc2.prob_above(0.6).shape == (3,)
    fc1 = cls().predict(curves[0], max_epochs=20)
    assert fc1.quantile(0.1).shape == (8,)
    assert isinstance(fc1.prob_above(0.6), float)
    np.testing.assert_allclose(fc1.median(), fc2.median()[0])
    lo, hi = fc2.interval(0.9)
    assert np.all(lo < fc2.median()) and np.all(fc2.median() < hi)


@pytest.mark.parametrize("cls", PREDICTORS)
@pytest.mark.parametrize(
    "curves, kwargs, match",
    [
        ([0.1, float("nan"), 0.3], {}, "finite"),
        ([0.1, float("inf"), 0.3], {}, "finite"),
        ([], {}, "at least one"),
        (np.zeros((2, 2, 2)), {}, "1-D"),
        ([0.1, 0.2, 0.3], {"max_epochs": 3}, "smaller than max_epochs"),
        ([0.1], {"max_epochs": 1}, "at least 2"),
        ([0.1, 0.2], {"direction": "up"}, "direction"),
        ([0.1, 0.2], {"bounds": (1.0, 0.0)}, "bounds"),
        ([0.1, 0.2], {"bounds": (0.0, math.inf)}, "bounds"),
        ([5.0, 6.0], {"bounds": None}, "bounds="),
    ],
)
def test__baselines__bad_input_raises_input_error(cls, curves, kwargs, match):
    kwargs = {"max_epochs": 10, **kwargs}
    with pytest.raises(InputError, match=match):
        cls().predict(curves, **kwargs)


@pytest.mark.parametrize("cls", PREDICTORS)
def test__baselines__bad_options_raise_input_error(cls):
    with pytest.raises(InputError, match="min_std"):
        cls(min_std=0.0)


@pytest.mark.parametrize("cls", [LastValuePredictor, Pow3FitPredictor])
def test__baselines__share_predict_with_the_pfn(cls):
    # one Predictor base: mixed lengths, the default bounds and the reported map work alike
    from lcpfn.forecast import Predictor

    pred = cls()
    assert isinstance(pred, Predictor)
    fc = pred.predict([[2.0, 1.6, 1.4, 1.3], [2.2, 1.9]], max_epochs=12, direction="minimize")
    assert fc.bounds == (0.0, None)
    np.testing.assert_array_equal(fc.lengths, [4, 2])
    one = pred.predict([2.2, 1.9], max_epochs=12, direction="minimize")
    np.testing.assert_allclose(fc.median()[1], one.median(), rtol=1e-12)
    assert np.all(np.isnan(fc.median()[0, :2]))
