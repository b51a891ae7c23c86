import math

import pytest
import torch
from scipy import stats

from lcpfn.bar_distribution import BarDistribution, borders_from_samples

BORDERS = torch.tensor([0.0, 1.0, 2.0, 4.0, 5.0])  # bins: tail [<1), [1,2), [2,4), tail [>=4)
S = 1.0 / (math.sqrt(2) * 0.4769362762044699)  # half-normal scale whose median is the width 1


def _logits(probs):
    return torch.log(torch.tensor(probs, dtype=torch.float64))


@pytest.fixture
def bar():
    return BarDistribution(BORDERS)


def test__log_prob__inner_bins_are_uniform(bar):
    lg = _logits([0.1, 0.2, 0.3, 0.4])
    assert bar.log_prob(lg, torch.tensor(1.5)).item() == pytest.approx(math.log(0.2 / 1.0), abs=1e-6)
    assert bar.log_prob(lg, torch.tensor(3.0)).item() == pytest.approx(math.log(0.3 / 2.0), abs=1e-6)


def test__log_prob__tails_are_half_normal_with_full_support(bar):
    lg = _logits([0.1, 0.2, 0.3, 0.4])
    for y in (0.5, -3.0):
        want = math.log(0.1) + stats.halfnorm(scale=S).logpdf(1.0 - y)
        assert bar.log_prob(lg, torch.tensor(y)).item() == pytest.approx(want, abs=1e-5)
    for y in (4.2, 9.0):
        want = math.log(0.4) + stats.halfnorm(scale=S).logpdf(y - 4.0)
        assert bar.log_prob(lg, torch.tensor(y)).item() == pytest.approx(want, abs=1e-5)


def test__tail_scale__half_the_tail_mass_lies_within_the_bin(bar):
    lg = _logits([0.1, 0.2, 0.3, 0.4])
    # P(Y < b0) = half of bin 0's mass; P(Y > b_K) = half of the last bin's mass
    assert bar.cdf(lg, torch.tensor(0.0)).item() == pytest.approx(0.05, abs=1e-9)
    assert bar.cdf(lg, torch.tensor(5.0)).item() == pytest.approx(1 - 0.2, abs=1e-9)


def test__cdf__hand_computed_values(bar):
    lg = _logits([0.1, 0.2, 0.3, 0.4])
    cases = {1.0: 0.1, 1.5: 0.2, 2.0: 0.3, 3.0: 0.45, 4.0: 0.6}
    for y, want in cases.items():
        assert bar.cdf(lg, torch.tensor(y)).item() == pytest.approx(want, abs=1e-9), y


def test__icdf__inverts_cdf_everywhere_including_tails(bar):
    lg = _logits([0.1, 0.2, 0.3, 0.4]).expand(99, 4)
    q = torch.linspace(0.01, 0.99, 99, dtype=torch.float64)
    y = bar.icdf(lg, q)
    assert torch.allclose(bar.cdf(lg, y), q, atol=1e-7)
    assert bar.icdf(_logits([0.1, 0.2, 0.3, 0.4]), 0.45).item() == pytest.approx(3.0, abs=1e-9)


def test__mean__hand_computed(bar):
    lg = _logits([0.1, 0.2, 0.3, 0.4])
    hn_mean = S * math.sqrt(2 / math.pi)
    want = 0.1 * (1 - hn_mean) + 0.2 * 1.5 + 0.3 * 3.0 + 0.4 * (4 + hn_mean)
    assert bar.mean(lg).item() == pytest.approx(want, abs=1e-9)


def test__density__integrates_to_one(bar):
    lg = _logits([0.25, 0.1, 0.4, 0.25])
    y = torch.linspace(-15, 20, 350_001, dtype=torch.float64)
    dens = bar.log_prob(lg.expand(y.numel(), 4), y).double().exp()
    assert torch.trapezoid(dens, y).item() == pytest.approx(1.0, abs=1e-4)


def test__forward__is_the_negative_log_density(bar):
    lg = torch.randn(3, 7, 4)
    y = torch.rand(3, 7) * 6 - 0.5
    assert torch.allclose(bar(lg, y), -bar.log_prob(lg, y))


def test__borders_from_samples__make_bins_equally_likely():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200_000, generator=g)
    b = borders_from_samples(x, 20)
    assert b.shape == (21,) and bool((b[1:] > b[:-1]).all())
    counts = torch.histc(x[(x >= b[0]) & (x <= b[-1])], bins=1, min=b[0].item(), max=b[-1].item())
    inner = torch.bucketize(x, b[1:-1])
    frac = torch.bincount(inner, minlength=20).double() / x.numel()
    assert torch.allclose(frac, torch.full((20,), 0.05, dtype=torch.float64), atol=2e-3)
    assert counts.item() == x.numel()


def test__borders_from_samples__ties_still_give_increasing_borders():
    x = torch.cat([torch.zeros(5000), torch.rand(5000)])
    b = borders_from_samples(x, 50)
    assert bool((b[1:] > b[:-1]).all())


def test__mean_between__hand_computed_inside_bins_and_tails(bar):
    p = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    # [1.5, 3]: half of bin [1, 2) (mass 0.1, centre 1.75) and half of [2, 4) (mass 0.15, centre 2.5)
    want = (0.1 * 1.75 + 0.15 * 2.5) / 0.25
    assert bar.mean_between_probs(p, torch.tensor(1.5), torch.tensor(3.0)).item() == pytest.approx(want, abs=1e-12)
    # (-inf, inf) is the plain mean
    whole = bar.mean_between_probs(p, torch.tensor(-math.inf), torch.tensor(math.inf)).item()
    assert whole == pytest.approx(bar.mean_probs(p).item(), abs=1e-12)
    # [-1, 0.5] lies in the left tail: a half-normal from 1 (scale S) truncated to u in [0.5/S, 2/S]
    lo_u, hi_u = 0.5 / S, 2.0 / S
    tail = stats.truncnorm(lo_u, hi_u)  # of u = (1 - x) / S
    want = 1.0 - S * tail.mean()
    assert bar.mean_between_probs(p, torch.tensor(-1.0), torch.tensor(0.5)).item() == pytest.approx(want, abs=1e-9)
    # [4.5, inf): the right tail from 4 truncated to u >= 0.5 / S
    want = 4.0 + S * stats.truncnorm(0.5 / S, math.inf).mean()
    assert bar.mean_between_probs(p, torch.tensor(4.5), torch.tensor(math.inf)).item() == pytest.approx(want, abs=1e-9)


def test__mean_between__matches_the_integral_of_the_density(bar):
    p = torch.tensor([0.25, 0.1, 0.4, 0.25], dtype=torch.float64)
    for lo, hi in [(0.3, 4.7), (-2.0, 1.2), (1.9, 9.0), (-math.inf, 2.5)]:
        y = torch.linspace(max(lo, -15.0), min(hi, 20.0), 400_001, dtype=torch.float64)
        dens = bar.log_prob(torch.log(p).expand(y.numel(), 4), y).double().exp()
        want = (torch.trapezoid(dens * y, y) / torch.trapezoid(dens, y)).item()
        got = bar.mean_between_probs(p, torch.tensor(lo), torch.tensor(hi)).item()
        # tolerance: the float32 density jumps at the borders, which the trapezoid rule smears by ~1e-6
        assert got == pytest.approx(want, abs=1e-5), (lo, hi)


def test__bar_distribution__rejects_bad_borders():
    with pytest.raises(ValueError):
        BarDistribution(torch.tensor([0.0, 1.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match="finite"):
        BarDistribution(torch.tensor([-math.inf, 0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match="finite"):
        BarDistribution(torch.tensor([0.0, 1.0, 2.0, math.inf]))
    with pytest.raises(ValueError):
        borders_from_samples(torch.rand(100), 50)
