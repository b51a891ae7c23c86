"""The evaluation harness (`lcpfn evaluate`) and the metric functions it is built on."""

from __future__ import annotations

import json
import math
import time
import subprocess
import sys
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pytest

from lcpfn import LCPFN, InputError
from lcpfn.errors import LCPFNError
from lcpfn.cli import main
from lcpfn.evaluate import (
    CUTOFFS,
    ResultCache,
    EvalDataset,
    build_forecaster,
    cutoff_index,
    evaluate,
    forecaster_from_predictor,
    npz_dataset,
    prior_dataset,
    real_datasets,
    split_of,
    summarize,
)
from lcpfn.forecast import Forecast, ValueTransform
from lcpfn.metrics import interval_coverage, log_likelihood, mean_and_se, score, squared_error

FIXTURE = Path(__file__).parent / "fixtures" / "reference_prior.npz"
STD_NORMAL = NormalDist()


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------
class NormalForecast(Forecast):
    """N(loc, 1) at every epoch, in model space: a forecast whose scores are known in closed form."""

    def __init__(self, loc: np.ndarray, *, scale: float = 1.0, squeeze: bool = False) -> None:
        n, h = loc.shape
        super().__init__(
            epochs=np.arange(2, h + 2), observed=np.zeros((n, 1)),
            transform=ValueTransform(np.full(n, scale), np.zeros(n)), direction="maximize", squeeze=squeeze,
        )  # fmt: skip
        self.loc = loc

    def _z_quantile(self, p):
        return self.loc + STD_NORMAL.inv_cdf(p)

    def _z_cdf(self, z, h):
        loc = self.loc if h is None else self.loc[:, h : h + 1]
        return np.vectorize(STD_NORMAL.cdf)(z - loc)

    def _z_log_prob(self, z, h):
        loc = self.loc if h is None else self.loc[:, h : h + 1]
        return -0.5 * (z - loc) ** 2 - 0.5 * math.log(2 * math.pi)

    def _z_mean(self):
        return self.loc.copy()


class Counting:
    """Delegates to a predictor and counts the curves it was asked to forecast."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.curves = 0
        self.calls = 0

    def predict(self, curves, **kw):
        self.calls += 1
        self.curves += np.atleast_2d(curves).shape[0]
        return self.inner.predict(curves, **kw)


class RejectsHigh:
    """Rejects (InputError) any call containing a curve whose first value is above 0.5."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.calls = 0

    def predict(self, curves, **kw):
        self.calls += 1
        if np.any(np.atleast_2d(curves)[:, 0] > 0.5):
            raise InputError("first value above 0.5")
        return self.inner.predict(curves, **kw)


def write_source(path: Path, curves: list[dict]) -> None:
    """Write curves in the shared real-data format (the layout of /work/shared/data/lcformat.py)."""
    n, t = len(curves), max(len(c["values"]) for c in curves)
    values = np.full((n, t), np.nan, dtype=np.float32)
    steps = np.full((n, t), np.nan)
    for i, c in enumerate(curves):
        values[i, : len(c["values"])] = c["values"]
        steps[i, : len(c["values"])] = np.arange(1, len(c["values"]) + 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        path, values=values, steps=steps, lengths=np.array([len(c["values"]) for c in curves], dtype=np.int32),
        source=np.array([path.parent.name] * n), task=np.array([c["task"] for c in curves]),
        config_id=np.array([c["config_id"] for c in curves]), metric=np.array([c["metric"] for c in curves]),
        higher_is_better=np.array([c["hib"] for c in curves]), step_unit=np.array(["epoch"] * n),
        config_json=np.array(["{}"] * n),
    )  # fmt: skip


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """Two small sources: accuracies in % (52 epochs) and losses (51 points, with bad curves)."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    t52 = np.arange(1, 53)
    acc = [
        dict(task=f"task{k}", config_id=f"cfg{j}", metric="val_accuracy(%)", hib=True,
             values=90 - 50 * t52 ** -0.7 * (1 + 0.03 * j) + rng.normal(0, 0.5, 52))
        for k in range(2) for j in range(15)
    ]  # fmt: skip
    write_source(root / "accsrc" / "accsrc.npz", acc)
    t51 = np.arange(1, 52)
    loss = [
        dict(task="t", config_id=f"hp{j}", metric="valid_loss", hib=False,
             values=0.7 * (0.5 + 0.5 * t51 ** -0.5) + rng.normal(0, 0.005, 51))
        for j in range(20)
    ]  # fmt: skip
    nan = loss[0]["values"].copy()
    nan[30] = np.nan
    loss.append(dict(task="t", config_id="bad-nan", metric="valid_loss", hib=False, values=nan))
    loss.append(dict(task="t", config_id="bad-div", metric="valid_loss", hib=False,
                     values=np.r_[np.full(40, 0.7), np.full(11, 1e6)]))  # fmt: skip
    loss.append(dict(task="t", config_id="bad-short", metric="valid_loss", hib=False, values=np.linspace(1, 0.5, 6)))
    write_source(root / "losssrc" / "losssrc.npz", loss)
    return root


@pytest.fixture(scope="module")
def tiny(tiny_model_dir) -> LCPFN:
    return LCPFN.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def small_prior() -> EvalDataset:
    return prior_dataset(12, seed=1)


# --------------------------------------------------------------------------------------------------
# metrics, against hand-computed values
# --------------------------------------------------------------------------------------------------
def test__log_likelihood__standard_normal_matches_hand_computed():
    fc = NormalForecast(np.zeros((2, 2)))
    ll = log_likelihood(fc, np.array([[0.0, 1.0], [2.0, 0.0]]))
    # log phi(0) = -0.918939, log phi(1) = -1.418939, log phi(2) = -2.918939
    np.testing.assert_allclose(ll, [-1.168939, -1.918939], atol=1e-6)


def test__log_likelihood__includes_the_jacobian_of_the_units():
    # z = 2 y: the density of y is 2 phi(2 y); at y = 0 that is log 2 - 0.918939
    fc = NormalForecast(np.zeros((1, 1)), scale=2.0)
    np.testing.assert_allclose(log_likelihood(fc, [[0.0]]), [math.log(2) - 0.918939], atol=1e-6)


def test__squared_error__is_the_mse_of_the_median():
    fc = NormalForecast(np.array([[0.0, 1.0, 2.0]]))
    np.testing.assert_allclose(squared_error(fc, [[1.0, 1.0, 0.0]]), [(1 + 0 + 4) / 3], atol=1e-12)


def test__interval_coverage__counts_epochs_inside_the_central_interval():
    fc = NormalForecast(np.zeros((1, 4)))
    # the 90 % interval is +-1.644854
    cov = interval_coverage(fc, [[0.0, 1.6, -1.7, 3.0]], level=0.9)
    np.testing.assert_allclose(cov, [0.5])
    np.testing.assert_allclose(interval_coverage(fc, [[0.0, 1.6, -1.7, 3.0]], level=0.95), [0.75])


def test__score__one_curve_forecast_takes_1d_truth():
    fc = NormalForecast(np.zeros((1, 2)), squeeze=True)
    s = score(fc, np.array([0.0, 1.0]))
    assert s.log_likelihood.shape == (1,)
    np.testing.assert_allclose(s.log_likelihood, [-1.168939], atol=1e-6)
    np.testing.assert_allclose(s.squared_error, [0.5])
    np.testing.assert_allclose(s.coverage, [1.0])


@pytest.mark.parametrize("truth", [np.zeros((2, 3)), np.zeros(2), np.zeros((1, 2))])
def test__metrics__wrong_truth_shape_names_the_shape(truth):
    fc = NormalForecast(np.zeros((2, 2)))
    with pytest.raises(InputError, match=r"truth must have shape \(2, 2\)"):
        log_likelihood(fc, truth)


def test__metrics__non_finite_truth_is_an_error():
    fc = NormalForecast(np.zeros((1, 2)))
    with pytest.raises(InputError, match="finite"):
        squared_error(fc, [[0.0, np.nan]])


def test__mean_and_se__hand_computed():
    m, se = mean_and_se([1.0, 2.0, 3.0])
    assert m == 2.0 and se == pytest.approx(1 / math.sqrt(3), abs=1e-12)
    assert math.isnan(mean_and_se([5.0])[1])
    with pytest.raises(InputError):
        mean_and_se([])


# --------------------------------------------------------------------------------------------------
# protocol pieces
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "length, expected",
    [(100, [10, 20, 40, 80]), (52, [5, 10, 21, 42]), (51, [5, 10, 20, 41]), (3, [1, 1, 1, 2]), (150, [15, 30, 60, 120])],
)
def test__cutoff_index__rounds_and_clips(length, expected):
    assert [cutoff_index(length, f) for f in CUTOFFS] == expected


def test__split_of__is_deterministic_and_holds_out_about_30_percent():
    splits = [split_of("src", f"hp{i}") for i in range(2000)]
    assert splits == [split_of("src", f"hp{i}") for i in range(2000)]
    frac = splits.count("holdout") / len(splits)
    assert 0.25 < frac < 0.35  # binomial sd ~0.01
    assert split_of("src", "hp1", holdout_fraction=0.0) == "dev"


def test__prior_dataset__is_reproducible_and_in_unit_space():
    a, b = prior_dataset(5, seed=3), prior_dataset(5, seed=3)
    assert a.kind == "prior" and len(a) == 5 and a.lengths.tolist() == [100] * 5
    np.testing.assert_array_equal(np.stack(a.curves), np.stack(b.curves))
    obs, fut = a.normalised(0, 10)
    np.testing.assert_array_equal(np.r_[obs, fut], a.curves[0])  # prior curves are used as they are


def test__prior_dataset__other_priors_are_synthetic_and_unknown_names_fail():
    ext = prior_dataset(20, seed=3, prior="extended")
    assert ext.kind == "synthetic" and ext.name == "extended prior(seed=3)" and len(ext) == 20
    assert prior_dataset(20, seed=3).kind == "prior"
    assert not np.allclose(np.stack(ext.curves), np.stack(prior_dataset(20, seed=3).curves))
    with pytest.raises(InputError, match="unknown prior 'nope'"):
        prior_dataset(5, prior="nope")


def test__npz_dataset__reads_the_reference_sampler_fixture():
    ds = npz_dataset(FIXTURE, n_curves=7)
    want = np.load(FIXTURE)["noisy"][:7].astype(np.float64)
    assert len(ds) == 7 and ds.kind == "prior"
    np.testing.assert_array_equal(np.stack(ds.curves), want)


def test__npz_dataset__without_a_curve_array_names_the_arrays(tmp_path):
    p = tmp_path / "x.npz"
    np.savez(p, something=np.zeros((3, 10)))
    with pytest.raises(InputError, match="something"):
        npz_dataset(p)
    with pytest.raises(InputError, match="does not exist"):
        npz_dataset(tmp_path / "missing.npz")


def test__real_datasets__drop_bad_curves_and_normalise(data_dir):
    acc, loss = real_datasets(data_dir, sources=["accsrc", "losssrc"], split="all")
    assert (acc.name, len(acc), acc.kind) == ("accsrc", 30, "real")
    assert len(loss) == 20
    for reason in ("1 non-finite values", "1 loss above 10x", "1 shorter than 10"):
        assert reason in loss.notes
    # accuracy in %: bounds (0, 100)
    i = 0
    obs, fut = acc.normalised(i, 5)
    np.testing.assert_allclose(np.r_[obs, fut], acc.curves[i] / 100)
    # loss: z = 1 - y / max(observed prefix)
    y = loss.curves[0]
    obs, fut = loss.normalised(0, 10)
    np.testing.assert_allclose(np.r_[obs, fut], 1 - y / y[:10].max())
    assert obs.min() == 0.0


def test__real_datasets__dev_and_holdout_partition_the_curves(data_dir):
    (dev,) = real_datasets(data_dir, sources=["accsrc"], split="dev")
    (hold,) = real_datasets(data_dir, sources=["accsrc"], split="holdout")
    (both,) = real_datasets(data_dir, sources=["accsrc"], split="all")
    assert set(dev.ids).isdisjoint(hold.ids)
    assert set(dev.ids) | set(hold.ids) == set(both.ids)
    # a configuration is in one split on every task
    cfg = {i.split("/")[1] for i in hold.ids}
    assert all(i.split("/")[1] not in cfg for i in dev.ids)


def test__real_datasets__unknown_source_and_missing_dir(data_dir, tmp_path):
    with pytest.raises(InputError, match="nope"):
        real_datasets(data_dir, sources=["nope"])
    with pytest.raises(InputError, match="does not exist"):
        real_datasets(tmp_path / "missing")


# --------------------------------------------------------------------------------------------------
# forecaster specs
# --------------------------------------------------------------------------------------------------
def test__build_forecaster__parses_label_options_and_cap(tiny_model_dir):
    f = build_forecaster(f"mine=pfn:{tiny_model_dir}@7")
    assert (f.label, f.max_curves, f.chunk_size) == ("mine", 7, 256)
    assert isinstance(f.predictor, LCPFN)
    a, b = build_forecaster("last"), build_forecaster("last:min_std=0.02")
    assert a.label == "last" and b.label == "last:min_std=0.02" and b.predictor.min_std == 0.02
    assert a.key != b.key
    assert build_forecaster("last").key == a.key  # stable across builds


@pytest.mark.parametrize(
    "spec, match",
    [("bogus", "unknown forecaster kind 'bogus'"), ("last:min_std", "key=value"), ("last:nope=1", "bad option"),
     ("pfn:/no/such/dir", "neither a shipped model"), ("last@0", "at least 1"), ("", "cannot parse")],
)  # fmt: skip
def test__build_forecaster__bad_specs_name_the_problem(spec, match):
    with pytest.raises(LCPFNError, match=match):
        build_forecaster(spec)


def test__import__does_not_import_the_optional_mcmc_stack():
    code = "import sys, lcpfn.evaluate; assert 'pymc' not in sys.modules and 'lcpfn.mcmc' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------------------------------
# evaluation, caching, resuming
# --------------------------------------------------------------------------------------------------
def test__evaluate__scores_every_curve_at_every_cutoff(tiny, small_prior):
    fcs = [forecaster_from_predictor("tiny", tiny, key="t"), build_forecaster("last")]
    res = evaluate(fcs, [small_prior], plot_curves=2)
    assert len(res) == 2 * 12 * 4
    ok = [r for r in res if r.error is None]
    assert ok and all(np.isfinite([r.ll, r.mse, r.coverage, r.seconds]).all() for r in ok)
    assert {(r.observed, r.length) for r in res} == {(10, 100), (20, 100), (40, 100), (80, 100)}
    assert all((r.bands is not None) == (r.index < 2 and r.error is None) for r in res)
    summary = summarize(res)
    assert len(summary) == 2 * 4
    for row in summary:
        mine = [r.ll for r in ok if (r.forecaster, r.cutoff) == (row.forecaster, row.cutoff)]
        assert row.ll == pytest.approx(np.mean(mine)) and row.n_curves == len(mine)


def test__evaluate__matches_calling_the_api_with_bounds_and_direction(tiny, data_dir):
    acc, loss = real_datasets(data_dir, sources=["accsrc", "losssrc"], split="all")
    fc = forecaster_from_predictor("tiny", tiny, key="t")
    for ds, direction in ((acc, "maximize"), (loss, "minimize")):
        ds = ds.head(4)
        res = evaluate([fc], [ds], cutoffs=[0.2])
        assert len(res) == 4 and all(r.error is None for r in res)
        for r in res:
            y = ds.curves[r.index]
            c = r.observed
            bounds = (0.0, 100.0) if direction == "maximize" else (0.0, float(y[:c].max()))
            api = tiny.predict(y[:c], max_epochs=len(y), direction=direction, bounds=bounds)
            ll_api = float(np.mean(api.log_prob(y[c:])))
            # the harness scores in normalised units: density x (high - low)
            assert r.ll == pytest.approx(ll_api + math.log(bounds[1] - bounds[0]), abs=1e-4)


def test__evaluate__raw_inputs_are_what_a_user_passes_scored_in_normalised_units(tiny, data_dir):
    acc, loss = real_datasets(data_dir, sources=["accsrc", "losssrc"], split="all")
    fc = forecaster_from_predictor("tiny", tiny, key="t")
    for ds, direction in ((acc.head(4), "maximize"), (loss.head(4), "minimize")):
        res = evaluate([fc], [ds], cutoffs=[0.2, 0.8], inputs="raw", plot_curves=2)
        assert len(res) == 8 and all(r.error is None for r in res)
        for r in res:
            y, c = ds.curves[r.index], r.observed
            bounds = ds.raw_bounds(r.index)
            assert bounds == ((0.0, 100.0) if direction == "maximize" else (0.0, None))
            api = tiny.predict(y[:c], max_epochs=len(y), direction=direction, bounds=bounds)
            low, high, _ = ds.normaliser(r.index, c)
            width = high - low
            assert r.ll == pytest.approx(float(np.mean(api.log_prob(y[c:]))) + math.log(width), abs=1e-4)
            assert r.mse == pytest.approx(float(np.mean((api.median() - y[c:]) ** 2)) / width**2, rel=1e-4)
            if r.bands is not None:  # normalised, increasing in the quantile level for either direction
                lo_z, med_z, hi_z = (np.array(r.bands[k]) for k in ("0.05", "0.5", "0.95"))
                assert np.all(lo_z <= med_z + 1e-9) and np.all(med_z <= hi_z + 1e-9)
                z_fut = ds.normalised(r.index, c)[1]
                inside = np.mean((z_fut >= lo_z - 1e-6) & (z_fut <= hi_z + 1e-6))
                assert inside == pytest.approx(r.coverage, abs=1e-9)
    # with both bounds known the forecaster sees the same curve either way: identical numbers
    norm = evaluate([fc], [acc.head(4)], cutoffs=[0.2, 0.8])
    raw = evaluate([fc], [acc.head(4)], cutoffs=[0.2, 0.8], inputs="raw")
    for a, b in zip(norm, raw):
        assert a.ll == pytest.approx(b.ll, abs=1e-4) and a.mse == pytest.approx(b.mse, rel=1e-4)
    with pytest.raises(InputError, match="inputs must be"):
        evaluate([fc], [acc.head(1)], inputs="units")


def test__evaluate__raw_and_normalised_results_are_cached_apart(tiny, data_dir, tmp_path):
    (loss,) = real_datasets(data_dir, sources=["losssrc"], split="all")
    fc = forecaster_from_predictor("tiny", tiny, key="t")
    cache = tmp_path / "cache.jsonl"
    norm = evaluate([fc], [loss.head(3)], cutoffs=[0.2], cache=cache)
    raw = evaluate([fc], [loss.head(3)], cutoffs=[0.2], cache=cache, inputs="raw")
    assert len(ResultCache(cache)) == 6
    assert [r.ll for r in norm] != [r.ll for r in raw]  # a loss is mapped differently by the model
    again = evaluate([fc], [loss.head(3)], cutoffs=[0.2], cache=cache, inputs="raw")
    assert [r.ll for r in again] == [r.ll for r in raw]


def test__evaluate__longer_and_shorter_curves_than_the_native_length(tiny):
    rng = np.random.default_rng(0)
    curves = [np.clip(0.3 + 0.4 * (1 - np.exp(-np.arange(1, n + 1) / 20)) + rng.normal(0, 0.01, n), 0, 1)
              for n in (150, 52, 150)]  # fmt: skip
    ds = EvalDataset(name="mixed", kind="real", curves=tuple(curves), ids=("a", "b", "c"),
                     maximize=np.ones(3, bool), low=np.zeros(3), high=np.ones(3))  # fmt: skip
    counting = Counting(tiny)
    res = evaluate([forecaster_from_predictor("tiny", counting, key="t")], [ds])
    assert counting.calls == 1 + 2 * 4  # an untimed warm-up, then one call per (length, cutoff)
    assert {(r.curve, r.observed) for r in res if r.cutoff == 0.8} == {("a", 120), ("b", 42), ("c", 120)}
    assert all(r.error is None and np.isfinite(r.ll) for r in res)


def test__evaluate__cache_is_reused_and_an_interrupted_sweep_resumes(tiny, small_prior, tmp_path):
    cache = tmp_path / "cache.jsonl"
    first = Counting(tiny)
    fc = forecaster_from_predictor("tiny", first, key="t", chunk_size=5)
    full = evaluate([fc], [small_prior], cache=cache)
    assert first.curves == 1 + 12 * 4  # with the warm-up
    # everything cached: nothing is forecast again
    again = Counting(tiny)
    assert evaluate([forecaster_from_predictor("tiny", again, key="t")], [small_prior], cache=cache) == full
    assert again.calls == 0
    # interrupt: lose the last chunk (5 rows) and leave half a line behind
    lines = cache.read_text().splitlines(keepends=True)
    assert len(lines) == 12 * 4
    cache.write_text("".join(lines[:-5]) + lines[-5][: len(lines[-5]) // 2])
    resumed = Counting(tiny)
    out = evaluate([forecaster_from_predictor("tiny", resumed, key="t", chunk_size=5)], [small_prior], cache=cache)
    assert resumed.curves == 1 + 5
    assert [(r.curve, r.cutoff) for r in out] == [(r.curve, r.cutoff) for r in full]
    np.testing.assert_allclose([r.ll for r in out], [r.ll for r in full], atol=1e-5)
    for line in cache.read_text().splitlines()[-5:]:
        json.loads(line)  # the appended rows start on a fresh line
    # another key (new weights or code) does not see these rows
    other = Counting(tiny)
    evaluate([forecaster_from_predictor("tiny", other, key="t2")], [small_prior.head(2)], cache=cache)
    assert other.curves == 1 + 2 * 4


def test__evaluate__rejected_curves_are_isolated_and_counted(tiny, small_prior):
    rejecting = RejectsHigh(tiny)
    res = evaluate([forecaster_from_predictor("r", rejecting, key="r", chunk_size=64)], [small_prior], cutoffs=[0.4])
    high = [i for i, y in enumerate(small_prior.curves) if y[0] > 0.5]
    assert 0 < len(high) < 12  # the seed gives both kinds
    assert sorted(r.index for r in res if r.error) == high
    assert all("above 0.5" in r.error for r in res if r.error)
    (row,) = summarize(res)
    assert (row.n_curves, row.n_failed) == (12 - len(high), len(high))
    assert rejecting.calls < 12 + 2 * len(high) * 4  # bisection, not one call per curve


class SlowFirstCall(Counting):
    """A counting predictor whose first call in a process pays a one-time setup of 0.3 s."""

    def predict(self, curves, **kw):
        if self.calls == 0:
            time.sleep(0.3)
        return super().predict(curves, **kw)


def test__evaluate__one_time_setup_is_not_charged_to_any_curve(tiny, small_prior):
    slow = SlowFirstCall(tiny)
    res = evaluate([forecaster_from_predictor("slow", slow, key="s")], [small_prior.head(4)], cutoffs=[0.2])
    assert slow.calls == 2  # the warm-up and one chunk
    assert all(r.seconds < 0.3 / 4 for r in res)  # not even a share of the 0.3 s


def test__evaluate__out_of_range_prior_curves_are_forecast_alone(tiny):
    base = np.linspace(0.2, 0.6, 100)
    curves = (base, base + 5.0, base * 0.9)  # the second is far outside [0, 1]: rejected
    ds = EvalDataset(name="p", kind="prior", curves=curves, ids=("a", "b", "c"),
                     maximize=np.ones(3, bool), low=np.zeros(3), high=np.ones(3))  # fmt: skip
    counting = Counting(tiny)
    res = evaluate([forecaster_from_predictor("tiny", counting, key="t")], [ds], cutoffs=[0.8])
    assert [r.error is None for r in res] == [True, False, True]
    assert counting.calls == 1 + 2  # warm-up; the two good curves together, the bad one alone


def test__evaluate__bad_arguments(tiny, small_prior):
    fc = forecaster_from_predictor("tiny", tiny, key="t")
    with pytest.raises(InputError, match="1.5"):
        evaluate([fc], [small_prior], cutoffs=[1.5])
    with pytest.raises(InputError, match="unique"):
        evaluate([fc, fc], [small_prior])
    with pytest.raises(InputError, match="at least one"):
        evaluate([], [small_prior])
    with pytest.raises(InputError, match="predict"):
        forecaster_from_predictor("x", object())


# --------------------------------------------------------------------------------------------------
# the command line, end to end
# --------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test__cli__prior_run_writes_tables_plots_and_resumes(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "ev"
    argv = ["evaluate", "-f", f"P=pfn:{tiny_model_dir}", "last@3", "--n-curves", "6", "--out", str(out),
            "--plot-curves", "2", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    for text in ("| P | prior(seed=0) |", "| last | prior(seed=0) |", "paper P1", "paper M3", "Paired: the first 3"):
        assert text in printed
    for name in ("results.md", "results.csv", "per_curve.csv", "cache.jsonl", "fan_prior_seed_0.png",
                 "ll_vs_runtime_prior_seed_0.png"):  # fmt: skip
        assert (out / name).stat().st_size > 0
    rows = (out / "results.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * 4
    n_cached = len((out / "cache.jsonl").read_text().splitlines())
    assert n_cached == 6 * 4 + 3 * 4
    assert main([*argv, "--no-plots"]) == 0  # everything from the cache
    assert capsys.readouterr().out.split("written:")[0] == printed.split("written:")[0]
    assert len((out / "cache.jsonl").read_text().splitlines()) == n_cached


@pytest.mark.slow
def test__cli__real_data_run(tiny_model_dir, data_dir, tmp_path, capsys):
    out = tmp_path / "ev"
    argv = ["evaluate", "-f", f"pfn:{tiny_model_dir}", "-d", "real", "--data-dir", str(data_dir), "--sources",
            "accsrc", "losssrc", "--split", "holdout", "--out", str(out), "--no-plots", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "| accsrc | holdout |" in printed and "| losssrc | holdout |" in printed
    assert "paper P1" not in printed  # the paper's rows are prior-curve numbers
    assert main(argv + ["--inputs", "raw"]) == 0
    assert "--inputs raw" in capsys.readouterr().out  # the report's command says how inputs were fed


@pytest.mark.parametrize(
    "extra, match",
    [(["-f", "bogus"], "unknown forecaster kind"), (["--cutoffs", "0", "0.5"], "got 0.0"),
     (["-d", "real", "--data-dir", "/no/such/dir"], "does not exist"), (["--n-curves", "0"], "at least 1"),
     (["--curves", "/no/such.npz"], "does not exist"), (["--threads", "0"], "at least 1")],
)  # fmt: skip
def test__cli__bad_input_exits_2_with_a_message(extra, match, tmp_path, capsys):
    assert main(["evaluate", "-f", "last", "--n-curves", "2", "--out", str(tmp_path), "--no-progress", *extra]) == 2
    err = capsys.readouterr().err
    assert "lcpfn evaluate: error:" in err and match in err


def test__head_to_head__pairs_the_same_problems_and_skips_rejections():
    from lcpfn.evaluate import CurveResult, format_head_to_head, head_to_head

    def r(fc, curve, ll, sec, error=None):
        return CurveResult(forecaster=fc, dataset="d", split="all", curve=curve, index=int(curve), cutoff=0.1,
                           observed=10, length=100, ll=ll, mse=0.0, coverage=1.0, seconds=sec, cpu_seconds=sec,
                           error=error)

    results = [r("a", "0", 2.0, 0.01), r("a", "1", 1.0, 0.01), r("a", "2", 5.0, 0.01), r("a", "3", 0.0, 0.01),
               r("b", "0", 1.5, 20.0), r("b", "1", 1.5, 40.0), r("b", "2", math.nan, 1.0, error="refused")]
    (h,) = head_to_head(results, "a", "b")
    # pairs: curves 0 and 1 (2 is rejected by b, 3 not run by b): diffs +0.5 and -0.5
    assert h.n_curves == 2 and h.ll_diff == pytest.approx(0.0) and h.ll_diff_se == pytest.approx(0.5)
    assert h.a_wins == 0.5 and h.speedup == pytest.approx(3000.0) and h.cpu_speedup == pytest.approx(3000.0)
    assert "| a | b | d | 10% | 2 | +0.000 ± 0.500 | 50% | 3,000× | 3,000× |" in format_head_to_head([h])
