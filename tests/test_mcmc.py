"""MCMC baseline: mixture-forecast math, the model's pieces, validation, and short real fits."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch
from scipy import optimize, stats

from lcpfn import Forecast
from lcpfn.errors import InputError, MissingDependencyError
from lcpfn.normalization import ValueTransform
from lcpfn.baselines import Pow3FitPredictor
from lcpfn.mcmc import MCMCDiagnostics, MCMCPredictor, MixtureForecast, constraint_weights, noiseless_curve
from lcpfn.mcmc_model import _PRIORS, _from_unconstrained, _sample_prior, _to_unconstrained, build_model
from lcpfn.priors import ReferencePrior
from lcpfn.priors.reference import _curves, _sample_params
from lcpfn.priors.reference_params import CURVE_PARAMS, NOISE_STD, LogNormal, log_name

# --- MixtureForecast against hand-computed mixtures ------------------------------------------------

MU = np.array([[[0.2, 0.3], [0.5, 0.6], [0.4, 0.45]]])  # (n=1, S=3, H=2)
SIGMA = np.array([[0.1, 0.2, 0.05]])
WEIGHTS = np.array([[1.0, 1.0, 2.0]])  # normalised: 0.25, 0.25, 0.5
W = WEIGHTS[0] / WEIGHTS.sum()


def _mixture(*, scale=1.0, shift=0.0, direction="maximize", weights=WEIGHTS, squeeze=False) -> MixtureForecast:
    return MixtureForecast(
        mu=MU,
        sigma=SIGMA,
        weights=weights,
        epochs=np.array([9, 10]),
        observed=np.zeros((1, 8)),
        transform=ValueTransform(np.array([scale]), np.array([shift])),
        direction=direction,
        squeeze=squeeze,
    )


def _pdf(y, h):
    return sum(W[s] * stats.norm.pdf(y, MU[0, s, h], SIGMA[0, s]) for s in range(3))


def _cdf(y, h):
    return sum(W[s] * stats.norm.cdf(y, MU[0, s, h], SIGMA[0, s]) for s in range(3))


def test__mixture_forecast__log_prob_cdf_mean_match_scipy():
    fc = _mixture()
    y = np.array([[0.35, 0.5]])
    want_lp = np.log([[_pdf(0.35, 0), _pdf(0.5, 1)]])
    np.testing.assert_allclose(fc.log_prob(y), want_lp, rtol=1e-12)
    np.testing.assert_allclose(fc.cdf(y), [[_cdf(0.35, 0), _cdf(0.5, 1)]], rtol=1e-12)
    np.testing.assert_allclose(fc.mean(), [[W @ MU[0, :, 0], W @ MU[0, :, 1]]], rtol=1e-12)
    grid = np.array([0.1, 0.45, 0.9])
    np.testing.assert_allclose(fc.log_prob_at(grid), np.log(_pdf(grid, 1))[None], rtol=1e-12)
    np.testing.assert_allclose(fc.prob_above(0.5), [1 - _cdf(0.5, 1)], rtol=1e-12)


def test__mixture_forecast__equal_weights_by_default_is_log_mean_exp():
    fc = _mixture(weights=None)
    want = np.log(np.mean([stats.norm.pdf(0.4, MU[0, s, 0], SIGMA[0, s]) for s in range(3)]))
    assert fc.log_prob(np.array([[0.4, 0.4]]))[0, 0] == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("q", [0.05, 0.5, 0.9])
def test__mixture_forecast__quantile_solves_the_mixture_cdf(q):
    fc = _mixture()
    got = fc.quantile(q)[0]
    for h in range(2):
        want = optimize.brentq(lambda y: _cdf(y, h) - q, -2.0, 3.0, xtol=1e-14)
        assert got[h] == pytest.approx(want, abs=1e-9)


def test__mixture_forecast__decreasing_transform_maps_back_with_jacobian():
    # caller value y = 10 - 10 z (a loss in [0, 10]): z = -0.1 y + 1
    fc = _mixture(scale=-0.1, shift=1.0, direction="minimize")
    y = np.array([[7.0, 5.5]])
    z = 1.0 - 0.1 * y
    want = np.log([[_pdf(z[0, 0], 0), _pdf(z[0, 1], 1)]]) + math.log(0.1)
    np.testing.assert_allclose(fc.log_prob(y), want, rtol=1e-12)
    np.testing.assert_allclose(fc.cdf(y), 1 - np.array([[_cdf(z[0, 0], 0), _cdf(z[0, 1], 1)]]), rtol=1e-12)
    z90 = optimize.brentq(lambda v: _cdf(v, 1) - 0.1, -2.0, 3.0, xtol=1e-14)
    assert fc.quantile(0.9)[0, 1] == pytest.approx(10 - 10 * z90, abs=1e-7)
    np.testing.assert_allclose(fc.mean(), 10 - 10 * _mixture().mean(), rtol=1e-12)


def test__mixture_forecast__squeezed_shapes_and_is_a_forecast():
    fc = _mixture(squeeze=True)
    assert isinstance(fc, Forecast)
    assert fc.quantile(0.3).shape == (2,)
    assert isinstance(fc.prob_above(0.4), float)


def test__mixture_forecast__rejects_inconsistent_arrays():
    with pytest.raises(ValueError, match="sigma"):
        MixtureForecast(mu=MU, sigma=np.zeros((1, 3)), epochs=np.array([9, 10]), observed=np.zeros((1, 8)),
                        transform=ValueTransform.identity(1), direction="maximize", squeeze=False)
    with pytest.raises(ValueError, match="weights"):
        _mixture(weights=np.zeros((1, 3)))


# --- the model's pieces ----------------------------------------------------------------------------

def _as_free_params(p: np.ndarray) -> dict[str, np.ndarray]:
    """Columns of the torch sampler's ``(n, 12)`` parameters under the MCMC model's names ``(n, 1)``."""
    out = {}
    for j, (name, dist) in enumerate(CURVE_PARAMS.items()):
        out[log_name(name) if isinstance(dist, LogNormal) else name] = (
            np.log(p[:, j]) if isinstance(dist, LogNormal) else p[:, j]
        )[:, None]
    return out


def test__noiseless_curve__matches_the_torch_reference_prior():
    g = torch.Generator().manual_seed(0)
    p = _sample_params(64, g, "cpu", torch.float64)  # (64, 12), columns as CURVE_PARAMS
    t = torch.arange(1, 101, dtype=torch.float64)
    want = _curves(p, t).numpy()
    np.testing.assert_allclose(noiseless_curve(np, _as_free_params(p.numpy()), t.numpy()), want, rtol=1e-10, atol=1e-12)


def test__free_parameters__are_the_reference_table_with_log_normals_as_logs():
    assert list(_PRIORS) == [
        log_name(n) if isinstance(d, LogNormal) else n for n, d in CURVE_PARAMS.items()
    ] + ["log_sigma"]
    assert _PRIORS["pow3_c"] == ("uniform", 0.0, 1.25)
    assert _PRIORS["janoschek_log_kappa"] == ("normal", -2.0, 1.0)
    assert _PRIORS["log_sigma"] == ("normal", NOISE_STD.log_mean, NOISE_STD.log_std) == ("normal", -4.0, 1.0)


@pytest.mark.slow
def test__mcmc_prior__draws_match_the_reference_prior_sampler():
    # Three samplers of the same prior, before the constraints: the PyMC model's own random
    # variables, the MCMC's numpy screen (_sample_prior) and the torch sampler of ReferencePrior.
    # Two-sample KS per parameter, fixed seeds; each passes at p > 0.001.
    import pymc as pm

    n = 20_000
    model = build_model(softness=0.01)
    drawn = pm.draw([model[name] for name in _PRIORS], draws=n, random_seed=1)
    pymc_draws = dict(zip(_PRIORS, drawn))
    numpy_draws = _sample_prior(n, np.random.default_rng(2))
    torch_draws = {k: v[:, 0] for k, v in _as_free_params(
        _sample_params(n, torch.Generator().manual_seed(3), "cpu", torch.float64).numpy()).items()}
    noise = ReferencePrior().sample(n, seq_len=2, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    torch_draws["log_sigma"] = noise.noise_std.log().numpy()
    pvalues = {
        (name, other): stats.ks_2samp(torch_draws[name], draws[name]).pvalue
        for name in _PRIORS
        for other, draws in (("pymc", pymc_draws), ("numpy", numpy_draws))
    }
    failed = {k: p for k, p in pvalues.items() if p <= 1e-3}
    assert not failed, failed
    assert stats.ks_2samp(torch_draws["pow3_c"], numpy_draws["ilog2_c"]).pvalue < 1e-3  # the test has teeth


def test__constraint_weights__zero_outside_and_inverse_soft_constraint_inside():
    t = np.arange(1, 101, dtype=np.float64)
    inside = 0.3 + 0.4 * (1 - t ** -0.5)  # rises from 0.3 to 0.66
    too_high = inside + 0.4  # exceeds 1
    falling = inside[::-1]  # ends below its start
    negative = inside - 0.35  # starts below 0
    w = constraint_weights(np.stack([inside, too_high, falling, negative]), softness=0.05)
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    want = 1 / (sig((inside[-1] - inside[0]) / 0.05) * sig(inside.min() / 0.05) * sig((1 - inside.max()) / 0.05))
    assert w[0] == pytest.approx(want, rel=1e-12)
    assert 1.0 <= w[0] <= 8.0
    np.testing.assert_array_equal(w[1:], 0.0)


def test__unconstrained_transform__round_trips():
    point = {name: (a + 0.3 * (b - a) if kind == "uniform" else a + 0.5 * b) for name, (kind, a, b) in _PRIORS.items()}
    back = _from_unconstrained(_to_unconstrained(point))
    for name in _PRIORS:
        assert back[name] == pytest.approx(point[name], rel=1e-12, abs=1e-12)


def _diagnostics(**changes) -> MCMCDiagnostics:
    good = dict(chains=2, draws=100, divergences=1, divergence_fraction=0.005, r_hat_max=1.3, r_hat_forecast=1.01,
                ess_forecast=150.0, kept_fraction=0.9, importance_ess=170.0, chain_mean_logp=(10.0, 9.5), seconds=1.0)
    return MCMCDiagnostics(**{**good, **changes})


@pytest.mark.parametrize(
    "changes, ok",
    [
        ({}, True),
        ({"r_hat_forecast": float("nan")}, True),  # too few draws to tell does not fail
        ({"r_hat_max": 3.0}, True),  # weights and unused components: not a threshold
        ({"divergence_fraction": 0.02}, False),
        ({"r_hat_forecast": 1.06}, False),
        ({"kept_fraction": 0.4}, False),
    ],
)
def test__mcmc_diagnostics__ok_is_derived_from_the_thresholds(changes, ok):
    diag = _diagnostics(**changes)
    assert diag.ok is ok and diag.as_dict()["ok"] is ok


# --- options, validation, the optional dependency --------------------------------------------------

@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"chains": 0}, "chains must be at least 1 but got 0"),
        ({"draws": 1.5}, "draws must be an integer"),
        ({"tune": -1}, "tune must be at least 0"),
        ({"seed": -3}, "seed"),
        ({"target_accept": 1.0}, "target_accept"),
        ({"constraint_softness": 0}, "constraint_softness"),
        ({"mass_matrix": "dense"}, "mass_matrix"),
        ({"backend": "jax"}, "backend"),
    ],
)
def test__mcmc_predictor__bad_options_raise_input_error(kwargs, match):
    with pytest.raises(InputError, match=match):
        MCMCPredictor(**kwargs)


@pytest.mark.parametrize(
    "curves, kwargs, match",
    [
        ([0.1, float("nan"), 0.3], {}, "finite"),
        ([0.1, float("-inf"), 0.3], {}, "finite"),
        ([], {}, "at least one"),
        (np.zeros((2, 2, 2)), {}, "1-D"),
        ([0.1, 0.2, 0.3], {"max_epochs": 3}, "smaller than max_epochs"),
        ([0.1], {"max_epochs": 1}, "at least 2"),
        ([0.1, 0.2], {"max_epochs": 10.0}, "integer"),
        ([0.1, 0.2], {"direction": "max"}, "direction"),
        ([0.1, 0.2], {"bounds": (2.0, 2.0)}, "bounds"),
        ([0.1, 0.2], {"bounds": (0.0,)}, "bounds"),
        ([3.0, 4.0], {"bounds": None}, "bounds="),
    ],
)
def test__mcmc_predictor__bad_input_raises_input_error_before_sampling(curves, kwargs, match):
    pred = MCMCPredictor()
    with pytest.raises(InputError, match=match):
        pred.predict(curves, **{"max_epochs": 10, **kwargs})
    assert pred._compiled is None  # rejected before anything was built


def test__mcmc_predictor__missing_pymc_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pymc", None)  # makes `import pymc` fail
    with pytest.raises(MissingDependencyError, match=r"pip install 'lcpfn\[mcmc\]'") as info:
        MCMCPredictor()
    assert "MCMCPredictor" in str(info.value)


def test__pow3_fit_predictor__missing_scipy_fails_at_construction(monkeypatch):
    # Pow3FitPredictor (lcpfn.baselines) needs scipy from the same extra; it says so when built
    monkeypatch.setitem(sys.modules, "scipy", None)
    monkeypatch.setitem(sys.modules, "scipy.optimize", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'lcpfn\[mcmc\]'") as info:
        Pow3FitPredictor()
    assert "Pow3FitPredictor" in str(info.value) and info.value.package == "scipy"


# --- real fits (short chains) ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def predictor() -> MCMCPredictor:
    """One compiled model for every fit below; the short runs keep the module under ~1 minute."""
    return MCMCPredictor(chains=2, draws=150, tune=150, seed=0)


@pytest.fixture(scope="module")
def prior_curves():
    return ReferencePrior().sample(2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)


@pytest.mark.slow
def test__mcmc_predictor__fits_a_prior_curve(predictor, prior_curves):
    cut = 30
    y = prior_curves.values[0].numpy()
    truth = prior_curves.noiseless[0].numpy()
    fc = predictor.predict(y[:cut], max_epochs=100)
    ll = fc.log_prob(y[cut:])
    assert np.all(np.isfinite(ll)) and ll.mean() > 0.0  # a density of at least 1 in [0, 1] units
    lo, hi = fc.interval(0.9)
    coverage = np.mean((lo <= y[cut:]) & (y[cut:] <= hi))
    assert coverage >= 0.6, coverage
    assert np.max(np.abs(fc.median() - truth[cut:])) < 0.05
    (diag,) = fc.diagnostics
    assert isinstance(diag, MCMCDiagnostics)
    assert diag.chains == 2 and diag.draws == 150 and diag.divergences >= 0
    assert np.isfinite(diag.r_hat_forecast) and np.isfinite(diag.r_hat_max) and diag.seconds > 0
    assert 0.0 < diag.kept_fraction <= 1.0 and len(diag.chain_mean_logp) == 2
    assert fc.n_draws == 300


@pytest.mark.slow
def test__mcmc_predictor__2d_and_1d_input_agree_under_a_seed(predictor, prior_curves):
    curves = prior_curves.values[:, :20].numpy()
    fc2 = predictor.predict(curves, max_epochs=40)
    assert fc2.quantile(0.5).shape == fc2.mean().shape == (2, 20)
    assert fc2.prob_above(0.5).shape == (2,) and len(fc2.diagnostics) == 2
    fc1 = predictor.predict(curves[0], max_epochs=40)
    assert fc1.quantile(0.5).shape == (20,)
    np.testing.assert_array_equal(fc1.quantile(0.5), fc2.quantile(0.5)[0])  # curve 0 gets the same seed


@pytest.mark.slow
def test__mcmc_predictor__long_horizon_minimised_loss_with_bounds(predictor, prior_curves):
    # the prior curve read as a loss in [0, 5] over a 150-epoch run (model time t * 100 / 150)
    loss = 5.0 * (1.0 - prior_curves.values[1, :60].numpy())
    fc = predictor.predict(loss, max_epochs=150, direction="minimize", bounds=(0.0, 5.0))
    np.testing.assert_array_equal(fc.epochs, np.arange(61, 151))
    med = fc.median()
    assert med.shape == (90,) and np.all(np.isfinite(med))
    assert np.all(fc.quantile(0.1) <= med) and np.all(med <= fc.quantile(0.9))
    assert np.all(np.isfinite(fc.log_prob(np.full(90, loss[-1]))))


def test__mcmc_predictor__is_a_predictor_like_the_pfn():
    from lcpfn import LCPFN, Predictor

    assert isinstance(MCMCPredictor(), Predictor)
    assert issubclass(LCPFN, Predictor)
