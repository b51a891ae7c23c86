"""Tests of ``RealRunPrior``: a base prior plus budget-tied schedules, spikes, divergence and
evaluation points of real runs.

The component functions are checked on hand-computed cases. End-to-end checks are exact because the
prior draws its base first and then every parameter for every curve whatever the probabilities:
one seed gives the same base curves with a component on or off, and a curve with no component on
is the base's curve exactly. Frequencies use fixed seeds (deterministic) and are checked within
``Z = 4.5`` binomial standard errors.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from conftest import TINY

from lcpfn import checkpoint as ckpt
from lcpfn.errors import InputError
from lcpfn.priors import (
    PRIORS,
    CurveBatch,
    ExtendedPrior,
    RealRunPrior,
    ReferencePrior,
    get_prior,
    prior_to_dict,
)
from lcpfn.priors.realrun import (
    EVALUATION_KINDS,
    SCHEDULES,
    annealing,
    base_at_progress,
    evaluation_points,
    first_index_at,
    health,
    lr_area,
    spike_profile,
)
from lcpfn.train import TrainConfig, train

Z = 4.5
SEED = 0
OFF = dict(p_offgrid_end=0.0, p_log_spaced=0.0, p_irregular=0.0, p_dense_end=0.0, p_warmup=0.0, p_schedule=0.0,
           p_spike=0.0, p_divergence=0.0)
SWITCHES = {  # info key -> the probability field that switches it
    "warmup": "p_warmup", "schedule": "p_schedule", "spike": "p_spike", "divergence": "p_divergence",
    "eval_kind": "p_log_spaced",
}


def _draw(prior, n: int = 256, *, seed: int = SEED, seq_len: int = 52, dtype=torch.float64):
    return prior.sample_with_info(n, seq_len=seq_len, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _only(**settings) -> RealRunPrior:
    return RealRunPrior(**{**OFF, **settings})


def _within_binomial(count: int, n: int, p: float) -> bool:
    return abs(count - n * p) <= Z * max(math.sqrt(n * p * (1 - p)), 0.5)


def _t(*rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)


# --- the batch ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("seq_len", [2, 3, 52, 1000])
def test__sample__shapes_dtypes_and_increasing_epochs_ending_at_the_budget(dtype, seq_len):
    batch = RealRunPrior().sample(64, seq_len=seq_len, generator=torch.Generator().manual_seed(1), dtype=dtype)
    assert isinstance(batch, CurveBatch) and (batch.batch_size, batch.seq_len) == (64, seq_len)
    for x in (batch.epochs, batch.values, batch.noiseless):
        assert x.shape == (64, seq_len) and x.dtype == dtype and x.device.type == "cpu"
        assert torch.isfinite(x).all()
    assert batch.noise_std.shape == (64,) and batch.noise_std.dtype == dtype
    assert (batch.epochs > 0).all() and (batch.epochs.diff(dim=1) > 0).all()
    assert torch.equal(batch.epochs[:, -1], torch.full((64,), float(seq_len), dtype=dtype))


def test__sample__every_evaluation_kind_gives_increasing_epochs_in_the_budget():
    for k, kind in enumerate(EVALUATION_KINDS[1:], start=1):
        field = "p_log_spaced" if kind == "log" else f"p_{kind}"
        batch, info = _draw(_only(**{field: 1.0}), 200, seq_len=40)
        assert (info["eval_kind"] == k).all(), kind
        assert (batch.epochs > 0).all() and (batch.epochs.diff(dim=1) > 0).all(), kind
        assert (batch.epochs[:, -1] == 40).all(), kind
        assert not torch.equal(batch.epochs, torch.arange(1.0, 41.0, dtype=batch.epochs.dtype).expand(200, 40))


def test__sample__same_seed_gives_identical_batches_and_other_seeds_differ():
    a, info_a = _draw(RealRunPrior(), seed=3)
    b, info_b = _draw(RealRunPrior(), seed=3)
    c, _ = _draw(RealRunPrior(), seed=4)
    for x, y in zip(dataclasses.astuple(a), dataclasses.astuple(b)):
        assert torch.equal(x, y)
    for k in info_a:
        torch.testing.assert_close(info_a[k], info_b[k], rtol=0, atol=0, equal_nan=True)
    assert not torch.equal(a.values, c.values)


def test__noiseless_curves__never_exceed_one_and_never_fall_below_chance_or_the_base():
    base, _ = _draw(ExtendedPrior(), 2000)
    batch, info = _draw(RealRunPrior(), 2000)
    assert batch.noiseless.max() <= 1 + 1e-9
    low = torch.minimum(base.noiseless.amin(dim=1), info["chance"])  # (B,)
    assert (batch.noiseless >= low[:, None] - 1e-9).all()


# --- composition ---------------------------------------------------------------------------------


@pytest.mark.parametrize("base", ["reference", "extended"])
def test__all_components_off__is_the_base_prior_draw_exactly(base):
    batch, _ = _draw(_only(base=base))
    expected = get_prior(base).sample(256, seq_len=52, generator=torch.Generator().manual_seed(SEED),
                                      dtype=torch.float64)
    for x, y in zip(dataclasses.astuple(batch), dataclasses.astuple(expected)):
        assert torch.equal(x, y)


def test__composes_with_the_reference_prior_and_its_settings():
    prior = RealRunPrior(base="reference", base_settings={"noise_log_mean": -6.0, "noise_log_std": 0.0})
    assert prior.base_prior == ReferencePrior(noise_log_mean=-6.0, noise_log_std=0.0)
    batch, info = _draw(prior, 500)
    ref = prior.base_prior.sample(500, seq_len=52, generator=torch.Generator().manual_seed(SEED), dtype=torch.float64)
    assert torch.allclose(batch.noise_std, torch.full((500,), math.exp(-6.0), dtype=torch.float64))
    # the observation noise of each evaluation is the base's, whatever the components did to the curve
    assert torch.allclose(batch.values - batch.noiseless, ref.values - ref.noiseless, atol=1e-12)
    untouched = (info["eval_kind"] == 0) & (info["schedule"] == 0) & ~info["warmup"] & ~info["spike"] \
        & ~info["divergence"]
    assert 0 < untouched.sum() < 500
    assert torch.equal(batch.values[untouched], ref.values[untouched])


@pytest.mark.parametrize("switch", sorted(SWITCHES))
def test__each_component__switches_off_and_leaves_the_other_draws_unchanged(switch):
    field = SWITCHES[switch]
    kinds_off = dict(p_offgrid_end=0.0, p_log_spaced=0.0, p_irregular=0.0, p_dense_end=0.0)
    extra = kinds_off if switch == "eval_kind" else {}
    on, info_on = _draw(RealRunPrior(**{**extra, field: 1.0}), 400)
    off, info_off = _draw(RealRunPrior(**{**extra, field: 0.0}), 400)
    hit_on, hit_off = ((info[switch] != 0) if info[switch].dtype == torch.long else info[switch]
                       for info in (info_on, info_off))
    assert hit_on.all() and not hit_off.any()
    for key in ("eval_kind", "warmup", "schedule", "spike", "divergence", "chance"):
        if key not in (switch, "chance"):  # the other components are the same draws
            assert torch.equal(info_on[key], info_off[key]), key
    # curves that only this component touched are the base's curves when it is off
    others = (info_off["eval_kind"] == 0) & (info_off["schedule"] == 0) & ~info_off["warmup"] \
        & ~info_off["spike"] & ~info_off["divergence"]
    base, _ = _draw(ExtendedPrior(), 400)
    assert others.any() and torch.equal(off.values[others], base.values[others])


def test__p_warmup_dip__only_acts_on_warmup_curves():
    _, info = _draw(RealRunPrior(p_warmup_dip=1.0), 2000)
    assert torch.equal(info["warmup_dip"], info["warmup"])


# --- evaluation points ----------------------------------------------------------------------------


def _points(kind: str, length: int, **params) -> torch.Tensor:
    defaults = dict(last_gap=_t(1.0), log_first=_t(0.5), mix=_t(0.0), sorted_uniforms=torch.zeros(1, length,
                    dtype=torch.float64), dense_share=_t(0.5), dense_span=_t(0.1))
    defaults.update(params)
    return evaluation_points(torch.tensor([EVALUATION_KINDS.index(kind)]), length, **defaults)[0]


def test__evaluation_points__hand_computed_positions():
    assert torch.allclose(_points("regular", 4), _t(0.25, 0.5, 0.75, 1.0))
    assert torch.allclose(_points("offgrid_end", 4, last_gap=_t(0.5)), _t(2 / 7, 4 / 7, 6 / 7, 1.0))
    assert torch.allclose(_points("log", 4, log_first=_t(1e-3)), _t(1e-3, 1e-2, 1e-1, 1.0))
    v = _t(0.7, 0.1, 0.5, 0.9)  # sorted inside: 0.1, 0.5, 0.7, (the last is 1)
    assert torch.allclose(_points("irregular", 4, mix=_t(1.0), sorted_uniforms=v[None]), _t(0.1, 0.5, 0.7, 1.0))
    half = 0.5 * _t(0.25, 0.5, 0.75, 1.0) + 0.5 * _t(0.1, 0.5, 0.7, 1.0)
    assert torch.allclose(_points("irregular", 4, mix=_t(0.5), sorted_uniforms=v[None]), half)
    # 5 points, 2 of them in the last 10 %: 0.9 * (1/3, 2/3, 1), then 0.95 and 1
    dense = _points("dense_end", 5, dense_share=_t(0.4), dense_span=_t(0.1))
    assert torch.allclose(dense, _t(0.3, 0.6, 0.9, 0.95, 1.0))


def test__first_index_at__is_the_first_evaluation_at_or_after_a_position():
    s = _t(0.1, 0.2, 0.5, 1.0)[None]
    assert first_index_at(s, _t(0.0, 0.2, 0.21, 0.99)[None]).tolist() == [[0, 1, 2, 3]]


def test__base_at_progress__interpolates_and_extends_back_log_linearly():
    f = _t(0.2, 0.4, 0.5, 0.6)[None]  # grid points at progress 0.25, 0.5, 0.75, 1
    w = _t(0.25, 0.375, 0.9, 1.0, 0.125, 0.0625)[None]
    # before the first point: 0.2 + 0.2 log2(w * 4): 0.0 at w = 1/8, -0.2 at w = 1/16 (clipped to the floor)
    got = base_at_progress(f, w, floor=_t(-1.0))
    assert torch.allclose(got, _t(0.2, 0.3, 0.56, 0.6, 0.0, -0.2)[None])
    got = base_at_progress(f, w, floor=_t(0.1))
    assert torch.allclose(got, _t(0.2, 0.3, 0.56, 0.6, 0.1, 0.1)[None])
    falling = _t(0.5, 0.4, 0.3, 0.2)[None]  # extends back flat, never above the first value
    assert torch.allclose(base_at_progress(falling, _t(0.01)[None], floor=_t(0.0)), _t(0.5)[None])


# --- the learning-rate schedule -------------------------------------------------------------------


def _schedule_args(name: str, *, s_w=0.0, m=0.0, cooldown=0.2, gamma=0.1, milestones=(0.5,), n_active=1):
    return dict(
        schedule=torch.tensor([SCHEDULES.index(name)]), warmup_end=_t(s_w), min_lr=_t(m), cooldown=_t(cooldown),
        step_factor=_t(gamma), milestones=_t(*milestones)[None],
        active_steps=(torch.arange(len(milestones)) < n_active)[None],
    )


@pytest.mark.parametrize(("name", "kw", "s", "area"), [
    ("constant", {}, (0.3, 1.0), (0.3, 1.0)),
    ("constant", dict(s_w=0.2), (0.1, 0.2, 1.0), (0.025, 0.1, 0.9)),  # s^2 / (2 s_w), then + (s - s_w)
    ("cosine", {}, (0.5, 1.0), (0.25 + 1 / (2 * math.pi), 0.5)),
    ("linear", {}, (0.5, 1.0), (0.375, 0.5)),
    ("linear", dict(m=0.1), (1.0,), (0.55,)),
    ("wsd", dict(cooldown=0.2), (0.8, 0.9, 1.0), (0.8, 0.875, 0.9)),
    ("step", dict(gamma=0.1, milestones=(0.5,)), (0.75, 1.0), (0.525, 0.55)),
    ("step", dict(gamma=0.5, milestones=(0.5, 0.75), n_active=2), (1.0,), (0.5 + 0.125 + 0.0625,)),
    ("step", dict(gamma=0.5, milestones=(0.5, 0.75), n_active=1), (1.0,), (0.75,)),
])
def test__lr_area__hand_computed_values(name, kw, s, area):
    got = lr_area(s=_t(*s)[None], **_schedule_args(name, **kw))
    assert torch.allclose(got, _t(*area)[None], atol=1e-12)


@pytest.mark.parametrize("name", SCHEDULES)
def test__lr_area__is_the_integral_of_the_learning_rate(name):
    kw = dict(s_w=0.07, m=0.05, cooldown=0.15, gamma=0.3, milestones=(0.4, 0.8), n_active=2)
    x = torch.linspace(0, 1, 200_001, dtype=torch.float64)
    s_w, m = 0.07, 0.05
    u = ((x - s_w) / (1 - s_w)).clamp(0, 1)
    decay = {
        "constant": torch.ones_like(x),
        "cosine": m + (1 - m) * (1 + torch.cos(math.pi * u)) / 2,
        "linear": 1 - (1 - m) * u,
        "step": 0.3 ** ((x >= 0.4).double() + (x >= 0.8).double()),
        "wsd": torch.where(x <= 0.85, torch.ones_like(x), 1 - (1 - m) * (x - 0.85) / 0.15),
    }[name]
    eta = torch.minimum(x / s_w, decay)
    numeric = torch.cumulative_trapezoid(eta, x)
    at = [20_000, 90_000, 170_000, 200_000]  # s = 0.1, 0.45, 0.85, 1
    got = lr_area(s=x[at][None], **_schedule_args(name, **kw))[0]
    assert torch.allclose(got, numeric[[i - 1 for i in at]], atol=1e-5)  # trapezoid error at the steps' jumps


@pytest.mark.parametrize(("name", "kw", "s", "a"), [
    ("constant", {}, (0.5, 1.0), (0.0, 0.0)),
    ("cosine", {}, (0.5, 1.0), (0.5, 1.0)),
    ("cosine", dict(s_w=0.2), (0.1, 0.6), (0.0, 0.5)),  # nothing during the warm-up
    ("linear", dict(m=0.1), (0.5, 1.0), (0.45, 0.9)),
    ("wsd", dict(cooldown=0.2), (0.8, 0.9, 1.0), (0.0, 0.5, 1.0)),
    ("step", dict(gamma=0.1, milestones=(0.5,)), (0.5, 0.51, 1.0), (0.0, 0.9 * (1 - math.exp(-1)), 0.9)),
])
def test__annealing__hand_computed_values(name, kw, s, a):
    got = annealing(s=_t(*s)[None], response=_t(0.01), **_schedule_args(name, **kw))
    assert torch.allclose(got, _t(*a)[None], atol=1e-9)


def test__health__is_zero_at_chance_and_one_from_halfway_to_the_best():
    f = _t(0.1, 0.3, 0.5, 0.9)[None]
    assert torch.allclose(health(f, _t(0.1)[:, None]), _t(0.0, 0.5, 1.0, 1.0)[None])


def test__warmup_only__reads_the_base_curve_at_the_warped_progress():
    prior = _only(p_warmup=1.0, warmup_range=(0.2, 0.2), p_warmup_dip=0.0)
    batch, info = _draw(prior, 64, seq_len=10)
    base = prior.base_prior.sample(64, seq_len=10, generator=torch.Generator().manual_seed(SEED), dtype=torch.float64)
    s = torch.arange(1, 11, dtype=torch.float64)[None] / 10
    area = torch.where(s < 0.2, s.square() / 0.4, 0.1 + (s - 0.2))
    w = area / 0.9
    expected = base_at_progress(base.noiseless, w.expand(64, 10), floor=torch.zeros(64, dtype=torch.float64))
    # the floor is the drawn chance level: compare where the warped progress is on the base's grid
    assert torch.allclose(batch.noiseless[:, 1:], expected[:, 1:], atol=1e-12)
    assert torch.allclose(batch.noiseless[:, -1], base.noiseless[:, -1], atol=1e-12)  # w(1) = 1
    assert torch.allclose(info["warmup.end"], torch.full((64,), 0.2, dtype=torch.float64))
    assert (batch.noiseless[:, 0] <= base.noiseless[:, 0] + 1e-12).all()  # the warm-up starts lower


def test__wsd__adds_the_gain_only_in_the_cooldown_and_all_of_it_at_the_end():
    prior = _only(p_schedule=1.0, schedule_weights=(0, 0, 0, 1), cooldown_range=(0.2, 0.2), min_lr_range=(0, 0),
                  anneal_gain_range=(0.3, 0.3), base="reference")
    batch, info = _draw(prior, 200, seq_len=20)
    assert (info["schedule"] == SCHEDULES.index("wsd")).all()
    base = prior.base_prior.sample(200, seq_len=20, generator=torch.Generator().manual_seed(SEED), dtype=torch.float64)
    s = torch.arange(1, 21, dtype=torch.float64) / 20
    w = torch.where(s <= 0.8, s, s - (s - 0.8).square() / 0.4) / 0.9  # S(s) / S(1)
    read = base_at_progress(base.noiseless, w.expand(200, 20), floor=info["chance"])
    c = info["chance"][:, None]
    gain = 0.3 * ((s - 0.8) / 0.2).clamp(0, 1) * health(read, c) * (1 - read).clamp_min(0)
    assert torch.allclose(batch.noiseless, read + gain, atol=1e-12)
    assert torch.allclose(batch.noiseless[:, :16], read[:, :16], atol=1e-12)  # before the cool-down: no gain
    healthy = health(read, c)[:, -1] == 1
    end = read[:, -1] + 0.3 * (1 - read[:, -1])
    assert torch.allclose(batch.noiseless[healthy, -1], end[healthy], atol=1e-12)


def test__warmup_dip__pulls_towards_chance_around_the_end_of_the_warmup():
    settings = dict(p_warmup=1.0, warmup_range=(0.25, 0.25), base="reference", warmup_dip_depth_range=(0.5, 0.5))
    plain, _ = _draw(_only(p_warmup_dip=0.0, **settings), 200, seq_len=20)
    dipped, info = _draw(_only(p_warmup_dip=1.0, **settings), 200, seq_len=20)
    s = torch.arange(1, 21, dtype=torch.float64) / 20
    bump = torch.exp(-0.5 * ((s - 0.25) / 0.125).square())
    gap = (plain.noiseless - info["chance"][:, None]).clamp_min(0)
    assert torch.allclose(dipped.noiseless, plain.noiseless - 0.5 * gap * bump, atol=1e-12)
    assert info["warmup_dip"].all()


# --- spikes and divergence ------------------------------------------------------------------------


def test__spike_profile__hand_computed():
    start = torch.tensor([[2, 0]])
    got = spike_profile(start, 5, recovery=_t(1.0, 2.0)[None], isolated=torch.tensor([[False, True]]))
    e = math.exp
    assert torch.allclose(got[0, 0], _t(0, 0, 1, e(-1), e(-2)))
    assert torch.allclose(got[0, 1], _t(1, 0, 0, 0, 0))


def test__isolated_full_spike__hits_chance_at_one_point_and_leaves_the_rest():
    prior = _only(p_spike=1.0, spike_count_range=(1, 1), spike_isolated_fraction=1.0, spike_height_range=(1.0, 1.0),
                  spike_position_range=(0.5, 0.5), base="reference")
    batch, info = _draw(prior, 300, seq_len=20)
    base = prior.base_prior.sample(300, seq_len=20, generator=torch.Generator().manual_seed(SEED), dtype=torch.float64)
    i = 9  # the first evaluation at or after progress 0.5 (s = 10 / 20)
    expected = torch.minimum(base.noiseless[:, i], info["chance"])
    assert torch.allclose(batch.noiseless[:, i], expected, atol=1e-12)
    rest = [j for j in range(20) if j != i]
    assert torch.equal(batch.noiseless[:, rest], base.noiseless[:, rest])
    assert torch.equal(batch.values[:, rest], base.values[:, rest])
    assert torch.equal(info["spike.count"], torch.ones(300, dtype=torch.float64))


def test__recovering_spike__decays_back_over_its_recovery_scale():
    prior = _only(p_spike=1.0, spike_count_range=(1, 1), spike_isolated_fraction=0.0, spike_height_range=(0.5, 0.5),
                  spike_position_range=(0.5, 0.5), spike_recovery_range=(2.0, 2.0), base="reference")
    batch, info = _draw(prior, 100, seq_len=20)
    base = prior.base_prior.sample(100, seq_len=20, generator=torch.Generator().manual_seed(SEED), dtype=torch.float64)
    gap = (base.noiseless - info["chance"][:, None]).clamp_min(0)
    n = (torch.arange(20, dtype=torch.float64) - 9).clamp_min(0)
    depth = torch.where(torch.arange(20) >= 9, 0.5 * torch.exp(-n / 2), torch.zeros(20, dtype=torch.float64))
    assert torch.allclose(batch.noiseless, base.noiseless - gap * depth, atol=1e-12)


def test__divergence__goes_to_chance_and_stays_there():
    prior = _only(p_divergence=1.0, divergence_speed_range=(1e-3, 1e-3), base="reference")
    batch, info = _draw(prior, 500, seq_len=30)
    base = prior.base_prior.sample(500, seq_len=30, generator=torch.Generator().manual_seed(SEED), dtype=torch.float64)
    i_d = info["divergence.index"].long()
    after = torch.arange(30)[None] >= i_d[:, None]
    chance = info["chance"][:, None].expand(500, 30)
    assert torch.allclose(batch.noiseless[after], chance[after], atol=1e-12)
    assert torch.equal(batch.noiseless[~after], base.noiseless[~after])
    # divergence positions are log-uniform on (0.01, 0.9): most runs diverge early
    s_d = (i_d + 1).double() / 30
    # P(position <= 0.1) = log(10) / log(90) = 0.51
    assert (s_d >= 0.01).all() and (s_d <= 0.9 + 1 / 30).all() and (s_d <= 0.1 + 1e-9).double().mean() > 0.4


# --- ranges and frequencies -----------------------------------------------------------------------


def test__drawn_parameters_lie_in_their_ranges():
    prior = RealRunPrior()
    _, info = _draw(prior, 4000)
    checks = {
        "warmup.end": prior.warmup_range, "schedule.min_lr": prior.min_lr_range,
        "schedule.cooldown": prior.cooldown_range, "schedule.anneal_gain": prior.anneal_gain_range,
        "step.factor": prior.step_factor_range, "step.count": prior.step_count_range,
        "chance": (-math.inf, prior.chance_level_range[1]), "spike.count": prior.spike_count_range,
    }
    for key, (low, high) in checks.items():
        x = info[key][~torch.isnan(info[key])]
        assert x.numel() > 0, key
        assert (x >= low).all() and (x <= high).all(), key
    counts = info["step.count"][~torch.isnan(info["step.count"])]
    assert set(counts.tolist()) == {1.0, 2.0, 3.0}


def test__component_frequencies_match_their_probabilities():
    prior = RealRunPrior()
    n = 4000
    _, info = _draw(prior, n)
    kinds = torch.bincount(info["eval_kind"], minlength=5).tolist()
    p_kinds = [prior.p_offgrid_end, prior.p_log_spaced, prior.p_irregular, prior.p_dense_end]
    for count, p in zip(kinds[1:], p_kinds):
        assert _within_binomial(count, n, p)
    assert _within_binomial(int(info["warmup"].sum()), n, prior.p_warmup)
    assert _within_binomial(int(info["spike"].sum()), n, prior.p_spike)
    assert _within_binomial(int(info["divergence"].sum()), n, prior.p_divergence)
    decays = torch.bincount(info["schedule"], minlength=5).tolist()
    assert _within_binomial(n - decays[0], n, prior.p_schedule)
    weights = np.array(prior.schedule_weights) / sum(prior.schedule_weights)
    for count, w in zip(decays[1:], weights):
        assert _within_binomial(count, n, prior.p_schedule * w)
    warm = info["warmup"]
    assert _within_binomial(int(info["warmup_dip"][warm].sum()), int(warm.sum()), prior.p_warmup_dip)


# --- configuration --------------------------------------------------------------------------------


@pytest.mark.parametrize(("settings", "match"), [
    (dict(p_spike=1.5), "p_spike"),
    (dict(p_log_spaced=0.6, p_irregular=0.6), "p_offgrid_end \\+ p_log_spaced"),
    (dict(warmup_range=(0.2, 0.1)), "warmup_range"),
    (dict(warmup_range=(0.0, 0.1)), "warmup_range is log-uniform"),
    (dict(cooldown_range=(0.0, 0.1)), "cooldown_range"),
    (dict(cooldown_range=(0.1, 1.0)), "cooldown_range"),
    (dict(schedule_weights=(1, 0, 0)), "schedule_weights"),
    (dict(schedule_weights=(0, 0, 0, 0)), "schedule_weights"),
    (dict(spike_count_range=(0, 2)), "spike_count_range"),
    (dict(spike_count_range=(1, 2.5)), "spike_count_range"),
    (dict(spike_height_range=(0.5, 1.5)), "spike_height_range"),
    (dict(spike_isolated_fraction=2.0), "spike_isolated_fraction"),
    (dict(base="nope"), "base='nope'"),
    (dict(base="realrun"), "base must be"),
    (dict(base_settings={"p_nothing": 1.0}), "p_nothing"),
    (dict(base="reference", base_settings={"p_step": 0.3}), "p_step"),
    (dict(base_settings=[("p_step", 0.1)]), "base_settings must be a mapping"),
])
def test__bad_settings_raise_value_error_naming_the_field(settings, match):
    with pytest.raises(ValueError, match=match):
        RealRunPrior(**settings)


def test__bad_settings_in_a_train_config_raise_input_error_naming_the_field(tmp_path):
    with pytest.raises(InputError, match="p_divergence"):
        TrainConfig(out_dir=str(tmp_path), prior="realrun", prior_settings={"p_divergence": -0.1})


def test__realrun__is_registered_and_round_trips_through_json():
    assert PRIORS["realrun"] is RealRunPrior
    prior = RealRunPrior(p_spike=0.1, warmup_range=(0.01, 0.05),
                         base_settings={"p_step": 0.3, "step_width_range": (0.05, 0.3)})
    d = json.loads(json.dumps(prior_to_dict(prior)))
    assert d["name"] == "realrun" and d["base"] == "extended"
    back = get_prior(d.pop("name"), **d)
    assert back == prior and hash(back) == hash(prior)
    assert back.base_prior == ExtendedPrior(p_step=0.3, step_width_range=(0.05, 0.3))


def test__realrun__is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        RealRunPrior().p_spike = 0.5  # type: ignore[misc]


def test__train__runs_on_the_realrun_prior(tmp_path):
    config = TrainConfig(out_dir=str(tmp_path), prior="realrun", **{**TINY, "steps": 2, "batch_size": 8,
                         "border_curves": 500, "seq_len": 40},
                         prior_settings={"p_log_spaced": 0.5, "base_settings": {"step_width_range": [0.05, 0.3]}})
    result = train(config, progress=False)
    assert result.finished and result.step == 2 and math.isfinite(result.loss)
    _, _, stored = ckpt.load_model(tmp_path)
    assert stored["prior"]["name"] == "realrun" and stored["prior"]["p_log_spaced"] == 0.5


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test__sample__cuda_generator_samples_on_cuda():
    batch = RealRunPrior().sample(32, seq_len=64, generator=torch.Generator("cuda").manual_seed(0))
    assert batch.values.device.type == "cuda" and batch.epochs.device.type == "cuda"
    assert torch.isfinite(batch.values).all() and (batch.epochs.diff(dim=1) > 0).all()
