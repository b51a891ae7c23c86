"""Tests of ``ExtendedPrior``: the reference prior plus switchable real-curve components.

Most checks are exact because the prior draws every parameter and all noise for every curve
whatever the probabilities: one seed with a component switched on (probability 1) and off
(probability 0) gives the same base curves and noise, so the component's effect is the difference
between the two draws. Statistical checks use fixed seeds (deterministic) and say their tolerance:
frequencies within ``Z = 4.5`` binomial standard errors, two-sample KS tests at ``ALPHA = 0.001``.
"""

from __future__ import annotations

import math

import dataclasses
import json
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from scipy import stats  # the "dev" extra

import lcpfn.priors as priors
from lcpfn.priors import CurveBatch, ExtendedPrior, ReferencePrior, get_prior, prior_to_dict
from lcpfn.priors.extended import COMPONENTS, _ar1

ALPHA = 0.001  # significance of the two-sample tests
Z = 4.5  # binomial tolerance, in standard errors
N = 2000  # curves per statistical check
SEED = 0
OFF = {f"p_{c}": 0.0 for c in COMPONENTS}


@contextmanager
def _one_thread() -> Iterator[None]:
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _draw(prior, n: int = N, *, seed: int = SEED, seq_len: int = 100, dtype=torch.float32):
    with _one_thread():
        gen = torch.Generator().manual_seed(seed)
        return prior.sample_with_info(n, seq_len=seq_len, generator=gen, dtype=dtype)


def _only(component: str | None, **settings) -> ExtendedPrior:
    """No reference curves and only ``component`` (or nothing) switched on."""
    probs = {**OFF, **({f"p_{component}": 1.0} if component else {})}
    return ExtendedPrior(p_reference=0.0, **{**probs, **settings})


def _paired(component: str, n: int = N, **settings) -> tuple[CurveBatch, CurveBatch, dict[str, torch.Tensor]]:
    """The same seed with ``component`` off and on: ``(off, on, info of on)``."""
    off, _ = _draw(_only(None, **settings), n, dtype=torch.float64)
    on, info = _draw(_only(component, **settings), n, dtype=torch.float64)
    assert info[component].all()
    return off, on, info


def _within_binomial(count: int, n: int, p: float) -> bool:
    return abs(count - n * p) <= Z * max(np.sqrt(n * p * (1 - p)), 0.5)


# --- the batch ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test__sample__shapes_dtypes_and_epochs_are_batch_first(dtype):
    batch = ExtendedPrior().sample(64, seq_len=100, generator=torch.Generator().manual_seed(1), dtype=dtype)
    assert isinstance(batch, CurveBatch)
    assert (batch.batch_size, batch.seq_len) == (64, 100)
    for x in (batch.epochs, batch.values, batch.noiseless):
        assert x.shape == (64, 100) and x.dtype == dtype and x.device.type == "cpu"
    assert batch.noise_std.shape == (64,) and batch.noise_std.dtype == dtype
    assert torch.equal(batch.epochs, torch.arange(1, 101, dtype=dtype).expand(64, 100))


def test__sample_with_info__masks_and_parameters_are_per_curve():
    batch, info = _draw(ExtendedPrior(), 50)
    assert set(COMPONENTS) | {"reference"} <= set(info)
    for key, x in info.items():
        assert x.shape == (50,), key
        if key in COMPONENTS or key == "reference":
            assert x.dtype == torch.bool
        else:  # "<component>.<parameter>": NaN exactly where the component is off
            component = key.split(".")[0]
            two = ~info["step.position_2"].isnan()
            mask = two if key in ("step.position_2", "step.jump_2") else info[component]
            assert torch.equal(~x.isnan(), mask), key


def test__sample__same_seed_gives_identical_batches():
    (a, ia), (b, ib) = (_draw(ExtendedPrior(), 500, seed=123) for _ in range(2))
    for field in ("epochs", "values", "noiseless", "noise_std"):
        assert torch.equal(getattr(a, field), getattr(b, field)), field
    for key in ia:
        assert torch.equal(ia[key], ib[key]) or torch.equal(ia[key].isnan(), ib[key].isnan()), key


def test__sample__different_seeds_give_different_batches():
    (a, _), (b, _) = _draw(ExtendedPrior(), 500, seed=1), _draw(ExtendedPrior(), 500, seed=2)
    assert not torch.equal(a.values, b.values)


@pytest.mark.parametrize(("batch_size", "seq_len"), [(0, 100), (-3, 100), (10, 1)])
def test__sample__bad_sizes_raise_value_error(batch_size, seq_len):
    with pytest.raises(ValueError, match=str(batch_size)):
        ExtendedPrior().sample(batch_size, seq_len=seq_len)


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        (dict(p_step=1.5), "p_step.*1.5"),
        (dict(p_reference=-0.1), "p_reference.*-0.1"),
        (dict(step_jump_range=(0.3, 0.1)), "step_jump_range.*0.3"),
        (dict(step_width_range=(0.0, 0.1)), "step_width_range.*log-uniform"),
        (dict(collapse_position_range=(0.5, 1.5)), "collapse_position_range.*1.5"),
        (dict(ar1_coef_range=(0.5, 1.0)), "ar1_coef_range"),
        (dict(quantize_levels_range=(0.5, 10)), "quantize_levels_range"),
        (dict(max_rounds=0), "max_rounds.*0"),
        (dict(p_late_rise=1.2), "p_late_rise.*1.2"),
        (dict(late_rise_start_range=(0.2, 1.3)), "late_rise_start_range.*1.3"),
        (dict(late_rise_gain_range=(0.0, 0.2)), "late_rise_gain_range.*log-uniform"),
        (dict(late_rise_gain_range=(0.1, 1.5)), "late_rise_gain_range.*headroom"),
        (dict(late_rise_power_range=(0.0, 2.0)), "late_rise_power_range.*positive"),
    ],
)
def test__extended_prior__bad_settings_raise_value_error(settings, match):
    with pytest.raises(ValueError, match=match):
        ExtendedPrior(**settings)


@pytest.mark.parametrize("seq_len", [2, 5, 100, 1000])
def test__sample__values_are_finite_at_every_length(seq_len):
    # every component on for half the curves, independently: all combinations occur
    prior = ExtendedPrior(p_reference=0.1, **{k: 0.5 for k in OFF})
    batch, info = _draw(prior, 400 if seq_len < 1000 else 100, seq_len=seq_len)
    assert torch.isfinite(batch.values).all() and torch.isfinite(batch.noiseless).all()
    assert torch.equal(batch.epochs[0], torch.arange(1, seq_len + 1, dtype=torch.float32))
    y = batch.noiseless
    assert (y >= -0.4 - 1e-6).all() and (y <= 1 + 1e-6).all()  # the documented noiseless range


def test__sample__almost_all_values_lie_in_minus_half_to_one_and_a_half():
    batch, _ = _draw(ExtendedPrior(), N)
    outside = ((batch.values < -0.5) | (batch.values > 1.5)).double().mean().item()
    assert outside < 0.005  # the reference prior's own noise puts ~0.1 % of values outside


# --- the mixture -------------------------------------------------------------------------------


def test__components__frequencies_match_their_probabilities():
    prior = ExtendedPrior()
    _, info = _draw(prior, 4000)
    n = 4000
    assert _within_binomial(int(info["reference"].sum()), n, prior.p_reference)
    for c in COMPONENTS:
        assert not (info[c] & info["reference"]).any(), c
        p = (1 - prior.p_reference) * getattr(prior, f"p_{c}")
        assert _within_binomial(int(info[c].sum()), n, p), (c, int(info[c].sum()), n * p)
    steps = int(info["step"].sum())
    two = int((~info["step.position_2"].isnan()).sum())
    assert _within_binomial(two, steps, prior.p_two_steps)


def test__components__are_switched_independently():
    _, info = _draw(ExtendedPrior(p_reference=0.0, **{k: 0.5 for k in OFF}), 4000)
    both = int((info["step"] & info["ar1"]).sum())
    assert _within_binomial(both, 4000, 0.25)


def test__reference_curves__are_exactly_the_reference_prior_draw():
    ours, info = _draw(ExtendedPrior())
    with _one_thread():
        ref = ReferencePrior().sample(N, generator=torch.Generator().manual_seed(SEED))
    keep = info["reference"]
    for field in ("values", "noiseless", "noise_std"):
        assert torch.equal(getattr(ours, field)[keep], getattr(ref, field)[keep]), field
    # every other curve is built on the same reference base with the same noise level, unless
    # its low-noise component replaced that level
    same = ~info["low_noise"]
    assert torch.equal(ours.noise_std[same], ref.noise_std[same])
    assert not info["low_noise"][keep].any()


def test__low_noise__draws_log_sigma_uniformly_in_its_range_and_only_changes_the_noise():
    prior = ExtendedPrior(p_reference=0.0, **{**OFF, "p_low_noise": 1.0}, low_noise_log_sigma_range=(-10.0, -5.0))
    ours, info = _draw(prior)
    plain, _ = _draw(ExtendedPrior(p_reference=0.0, **OFF))
    assert info["low_noise"].all()
    log_sigma = ours.noise_std.log()
    assert torch.allclose(log_sigma, info["low_noise.sigma"].log())
    assert log_sigma.min() >= -10.0 - 1e-5 and log_sigma.max() <= -5.0 + 1e-5
    assert abs(log_sigma.mean().item() + 7.5) < 0.1 and abs(log_sigma.std().item() - 5 / math.sqrt(12)) < 0.1
    assert torch.equal(ours.noiseless, plain.noiseless)  # same shapes, only a smaller noise
    resid = (ours.values - ours.noiseless) / ours.noise_std[:, None]
    assert abs(resid.std().item() - 1.0) < 0.02


def test__p_reference_one__gives_the_reference_prior_exactly():
    ours, _ = _draw(ExtendedPrior(p_reference=1.0), 500)
    with _one_thread():
        ref = ReferencePrior().sample(500, generator=torch.Generator().manual_seed(SEED))
    for field in ("epochs", "values", "noiseless", "noise_std"):
        assert torch.equal(getattr(ours, field), getattr(ref, field)), field


def _curve_stats(batch: CurveBatch) -> dict[str, np.ndarray]:
    y, v = batch.noiseless.double().numpy(), batch.values.double().numpy()
    return {
        "first value": y[:, 0],
        "last value": y[:, -1],
        "value at epoch 10": y[:, 9],
        "noise level": (v - y).std(axis=1),
        "noisy last value": v[:, -1],
        "noisy first value": v[:, 0],
        "lag-1 correlation of the noise": _lag1(v - y),
    }


def _lag1(res: np.ndarray) -> np.ndarray:
    r = res - res.mean(axis=1, keepdims=True)
    return (r[:, 1:] * r[:, :-1]).sum(axis=1) / (r * r).sum(axis=1)


def test__all_components_off__matches_the_reference_prior_in_distribution():
    ours, info = _draw(_only(None))
    assert not any(info[c].any() for c in COMPONENTS) and not info["reference"].any()
    with _one_thread():
        ref = ReferencePrior().sample(N, generator=torch.Generator().manual_seed(SEED + 1))
    a, b = _curve_stats(ours), _curve_stats(ref)
    pvalues = {k: float(stats.ks_2samp(a[k], b[k]).pvalue) for k in a}
    failed = {k: p for k, p in pvalues.items() if p <= ALPHA}
    assert not failed, f"KS p <= {ALPHA}: {failed} (all: {pvalues})"


def test__ks_statistics__detect_a_component():
    # teeth: the same statistics at the same threshold reject a prior with AR(1) noise everywhere
    ours, _ = _draw(_only("ar1"))
    with _one_thread():
        ref = ReferencePrior().sample(N, generator=torch.Generator().manual_seed(SEED + 1))
    key = "lag-1 correlation of the noise"
    assert stats.ks_2samp(_curve_stats(ours)[key], _curve_stats(ref)[key]).pvalue < ALPHA


# --- each component does what its docstring says ------------------------------------------------


def test__slow_start__waits_at_the_plateau_and_keeps_the_last_value():
    off, on, info = _paired("slow_start")
    b, f = off.noiseless, on.noiseless
    plateau = info["slow_start.plateau"][:, None]
    assert (plateau <= b[:, :1] + 1e-12).all() and (plateau >= -1e-12).all()
    # every value lies between the plateau and the base curve's; the last value is unchanged
    assert ((f >= torch.minimum(plateau, b) - 1e-12) & (f <= torch.maximum(plateau, b) + 1e-12)).all()
    torch.testing.assert_close(f[:, -1], b[:, -1], rtol=0, atol=1e-12)
    # before the inflection (epoch <= s_w L / 4) the curve is still much closer to the plateau
    early = (torch.arange(1, 101)[None, :] <= info["slow_start.position"][:, None] * 25)
    near = ((f - plateau).abs() <= 0.5 * (b - plateau).abs() + 1e-12) | ~early
    assert near.all()
    assert torch.equal(on.noise_std, off.noise_std)
    torch.testing.assert_close(on.values - f, off.values - b, rtol=0, atol=1e-12)  # same noise


def test__step__jumps_at_the_step_position_by_more_than_the_noise():
    off, on, info = _paired("step")
    f = on.noiseless
    assert (f <= 1 + 1e-12).all()
    s1 = info["step.position_1"]
    before = (s1 * 100).floor().long().clamp(1, 100) - 1  # the last epoch before the step
    after = (before + 5).clamp_max(99)  # five epochs on: a jump of scale <= 0.03 has saturated
    jump = f.gather(1, after[:, None])[:, 0] - f.gather(1, before[:, None])[:, 0]
    base = off.noiseless.gather(1, after[:, None])[:, 0] - off.noiseless.gather(1, before[:, None])[:, 0]
    # J_1 >= 0.05, at most shrunk by 1 / (1 + J_1 + J_2) and not quite saturated: >= 0.025 + base change
    assert (jump - base >= 0.025).all(), (jump - base).min()
    assert (jump > 2 * on.noise_std).double().mean() > 0.8
    # the observed values show it too: mean of 5 epochs after the step minus 5 before
    idx = torch.arange(5)[None, :]
    v = on.values
    ok = (s1 > 0.06) & (s1 < 0.85)
    pre = v.gather(1, (before[:, None] - idx).clamp_min(0)).mean(1)
    post = v.gather(1, (after[:, None] + idx).clamp_max(99)).mean(1)
    assert ((post - pre)[ok] > 0).double().mean() > 0.8
    # two steps where drawn, the second after the first and smaller
    two = ~info["step.position_2"].isnan()
    assert (info["step.position_2"][two] >= s1[two]).all()
    assert (info["step.jump_2"][two] < info["step.jump_1"][two]).all()
    assert _within_binomial(int(two.sum()), N, 0.5)


def test__late_rise__is_off_by_default_and_leaves_older_seeds_unchanged():
    # added after models were trained: off by default, and its numbers are drawn after all others
    assert ExtendedPrior().p_late_rise == 0.0
    (a, info), (b, _) = _draw(ExtendedPrior(), 500), _draw(ExtendedPrior(p_late_rise=0.0), 500)
    assert not info["late_rise"].any() and info["late_rise.start"].isnan().all()
    c, info_c = _draw(ExtendedPrior(p_late_rise=0.5), 500)
    rising = info_c["late_rise"]
    assert 0 < int(rising.sum()) < 500
    # curves without the component are the very curves drawn with it switched off
    assert torch.equal(a.values[~rising], c.values[~rising]) and torch.equal(a.values, b.values)
    assert not torch.equal(a.values[rising], c.values[rising])


def test__late_rise__adds_a_ramp_that_starts_at_s_r_and_ends_with_the_budget():
    off, on, info = _paired("late_rise")
    b, f = off.noiseless, on.noiseless
    s_r, gain = info["late_rise.start"], info["late_rise.gain"]
    assert ((s_r >= 0) & (s_r <= 0.7)).all()
    assert (f <= 1 + 1e-12).all()
    delta = f - b
    s = torch.arange(1, 101, dtype=torch.float64)[None, :] / 100
    # nothing changes before s_r; afterwards the extra value only grows, and the full gain is reached
    # at the last epoch: G = g (1 - f(s_r)) with g in the gain range
    before = s < s_r[:, None]
    keep = b.amax(dim=1) + gain <= 1  # curves that the rescaling to <= 1 left alone
    assert int(keep.sum()) > N // 2
    assert torch.equal(delta[keep][before[keep]], torch.zeros_like(delta[keep][before[keep]]))
    assert (delta[keep].diff(dim=1) >= -1e-12).all()
    torch.testing.assert_close(delta[keep][:, -1], gain[keep], rtol=0, atol=1e-12)
    i_r = (s_r * 100).ceil().clamp(1, 100).long() - 1
    headroom = (1 - b.gather(1, i_r[:, None])[:, 0]).clamp_min(0)
    ratio = gain[headroom > 0.05] / headroom[headroom > 0.05]
    assert ((ratio >= 0.02 - 1e-9) & (ratio <= 0.4 + 1e-9)).all()
    # log-uniform: about half the ratios lie below the geometric midpoint
    assert _within_binomial(int((ratio < (0.02 * 0.4) ** 0.5).sum()), len(ratio), 0.5)
    # and the rise is visible in the observed values: the last 10 epochs gained on the base curve
    late = (on.values[:, -10:] - off.values[:, -10:]).mean(dim=1)
    assert (late[keep & (gain > 0.05)] > 0.02).double().mean() > 0.9


def test__overfit__freezes_at_the_onset_then_declines_by_the_drawn_amount():
    off, on, info = _paired("overfit")
    b, f = off.noiseless, on.noiseless
    t_o = (info["overfit.onset"] * 100).round().long()  # 1-based epoch of the peak
    t = torch.arange(1, 101)[None, :]
    before = t <= t_o[:, None]
    assert torch.equal(f[before], b[before])
    peak = f.gather(1, t_o[:, None] - 1)[:, 0]
    assert (f.diff(dim=1)[(t[:, 1:] > t_o[:, None])] <= 1e-12).all()  # non-increasing after
    torch.testing.assert_close(peak - f[:, -1], info["overfit.decline"], rtol=0, atol=1e-12)
    assert (info["overfit.decline"] >= 0.02).all()


@pytest.mark.parametrize("seq_len", [20, 100, 1000])
def test__collapse__drops_to_a_low_level_and_stays_there(seq_len):
    on, info = _draw(_only("collapse"), 300, seq_len=seq_len, dtype=torch.float64)
    off, _ = _draw(_only(None), 300, seq_len=seq_len, dtype=torch.float64)
    f, level, s_c = on.noiseless, info["collapse.level"], info["collapse.position"]
    s = torch.arange(1, seq_len + 1)[None, :] / seq_len
    pre = s <= s_c[:, None]
    assert torch.equal(f[pre], off.noiseless[pre])  # untouched before the collapse
    assert (level <= 0.4 + 1e-12).all()
    # the level is at least collapse_min_drop below the value at the collapse, and reached
    i_c = (s_c * seq_len).ceil().long().clamp(1, seq_len) - 1
    assert (off.noiseless.gather(1, i_c[:, None])[:, 0] - level >= 0.1 - 1e-12).all()
    assert ((f[:, -1] - level).abs() <= 0.05).all()
    assert (f[:, -1] < 0.45).all()


def test__flat__keeps_the_total_change_tiny():
    off, on, info = _paired("flat")
    f = on.noiseless
    spread = f.amax(1) - f.amin(1)
    assert (spread <= info["flat.change"] + 1e-12).all() and (spread <= 0.03 + 1e-12).all()
    assert torch.equal(f[:, 0], off.noiseless[:, 0])  # around the curve's first value
    # it is applied last, so it flattens steps and collapses too
    on, info = _draw(_only("flat", p_step=1.0, p_collapse=1.0), 500)
    assert ((on.noiseless.amax(1) - on.noiseless.amin(1)) <= info["flat.change"] + 1e-6).all()


def test__heteroscedastic__noise_std_follows_progress_with_rms_noise_std():
    off, on, info = _paired("heteroscedastic")
    kappa = info["heteroscedastic.log_ratio"]
    s = torch.arange(1, 101, dtype=torch.float64)[None, :] / 100
    m = torch.exp(kappa[:, None] * (s - 0.5))
    m = m / m.square().mean(1, keepdim=True).sqrt()
    res = on.values - on.noiseless
    z = res / (on.noise_std[:, None] * m)
    torch.testing.assert_close(z, (off.values - off.noiseless) / off.noise_std[:, None], rtol=1e-9, atol=1e-9)
    # the noise really changes with progress: late / early spread follows kappa
    ratio = (res[:, 80:].std(1) / res[:, :20].std(1)).log()
    assert stats.spearmanr(kappa.numpy(), ratio.numpy()).statistic > 0.8


def test__ar1__noise_is_positively_correlated_with_unit_variance():
    off, on, info = _paired("ar1")
    z = ((on.values - on.noiseless) / on.noise_std[:, None]).numpy()
    lag1 = _lag1(z)
    phi = info["ar1.coef"].numpy()
    assert (phi >= 0.3).all() and (phi <= 0.95).all()
    assert lag1.mean() > 0.4 and (lag1 > 0).mean() > 0.99
    # per-curve estimates follow phi (small-sample bias ~ -(1 + 3 phi) / L)
    assert abs((lag1 - phi).mean()) < 0.06
    assert abs(z.std() - 1) < 0.05
    assert abs(_lag1((off.values - off.noiseless).numpy()).mean()) < 0.02  # off: i.i.d.


def test__ar1__fft_filter_equals_the_recursion():
    g = torch.Generator().manual_seed(3)
    eta = torch.randn(5, 37, generator=g, dtype=torch.float64)
    phi = torch.tensor([0.0, 0.3, 0.6, 0.9, 0.99], dtype=torch.float64)
    expected = torch.empty_like(eta)
    expected[:, 0] = eta[:, 0]
    for t in range(1, 37):
        expected[:, t] = phi * expected[:, t - 1] + torch.sqrt(1 - phi**2) * eta[:, t]
    torch.testing.assert_close(_ar1(eta, phi), expected, rtol=0, atol=1e-12)


def test__outliers__are_rare_sized_spikes_mostly_downward():
    off, on, _ = _paired("outliers")
    spike = (on.values - off.values).numpy()  # same base and noise: the difference is the spikes
    hit = np.abs(spike) > 1e-12
    assert hit.any(axis=1).all()  # at least one outlier per curve
    size = np.abs(spike[hit])
    assert (size >= 0.05 - 1e-12).all() and (size <= 0.4 + 1e-12).all()
    assert _within_binomial(int((spike[hit] < 0).sum()), int(hit.sum()), 0.8)
    # further outliers at rate rho ~ LogUniform(0.005, 0.05): mean rate (0.045 / ln 10) ~ 0.0195
    extra = (hit.sum() - N) / (N * 100)
    assert 0.012 < extra < 0.028
    torch.testing.assert_close(on.noiseless, off.noiseless, rtol=0, atol=0)


def test__quantize__values_lie_on_the_one_over_n_grid():
    off, on, info = _paired("quantize")
    n = info["quantize.levels"][:, None]
    assert (n >= 20).all() and (n <= 2000).all() and torch.equal(n, n.round())
    k = on.values * n
    torch.testing.assert_close(k, k.round(), rtol=0, atol=1e-9)
    assert ((on.values - off.values).abs() <= 0.5 / n + 1e-12).all()


# --- configuration -----------------------------------------------------------------------------


def test__extended_prior__is_registered_and_exported():
    assert priors.PRIORS["extended"] is ExtendedPrior and "ExtendedPrior" in priors.__all__
    assert ExtendedPrior.name == "extended"
    assert get_prior("extended") == ExtendedPrior()


def test__prior_to_dict__round_trips_through_get_prior_and_json():
    prior = ExtendedPrior(p_reference=0.5, p_step=0.3, step_position_range=(0.4, 0.6), max_rounds=10)
    d = prior_to_dict(prior)
    assert d["name"] == "extended" and d["p_step"] == 0.3 and d["step_position_range"] == (0.4, 0.6)
    back = get_prior(**json.loads(json.dumps(d)))  # JSON turns the ranges into lists
    assert back == prior and hash(back) == hash(prior)
    assert isinstance(back.step_position_range, tuple)


def test__extended_prior__is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        ExtendedPrior().p_step = 0.5  # type: ignore[misc]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test__sample__cuda_generator_samples_on_cuda():
    def draw():
        return ExtendedPrior().sample(1000, generator=torch.Generator("cuda").manual_seed(0))

    batch = draw()
    assert all(x.is_cuda for x in (batch.epochs, batch.values, batch.noiseless, batch.noise_std))
    assert torch.isfinite(batch.values).all()
    assert torch.equal(batch.values, draw().values)
