"""The evaluation harness (`lcpfn evaluate`) and the metric functions it is built on."""

from __future__ import annotations

import argparse
import json
import logging
import math
import subprocess
import sys
import types
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pytest

import lcpfn.evaluation
import lcpfn.evaluation.run
from lcpfn import LCPFN, InputError
from lcpfn.errors import LCPFNError
from lcpfn.evaluation import (
    CUTOFFS,
    CurveResult,
    HeadToHead,
    ResultCache,
    EvalDataset,
    build_forecaster,
    cutoff_index,
    evaluate,
    forecaster_from_predictor,
    format_head_to_head,
    head_to_head,
    npz_dataset,
    prior_dataset,
    real_datasets,
    split_of,
    summarize,
)
from lcpfn.evaluation.cli import add_cli
from lcpfn.evaluation.forecasters import _COMMON_CODE, _code_hash, _code_modules
from lcpfn.evaluation.report import _fmt_ratio
from lcpfn.forecast import Forecast
from lcpfn.normalization import ValueTransform
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


def evaluate_cli(argv: list[str]) -> int:
    """``lcpfn evaluate ARGV``, parsed by the harness's own ``add_cli`` as ``lcpfn.cli`` registers it."""
    parser = argparse.ArgumentParser(prog="lcpfn")
    add_cli(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["evaluate", *argv])
    return args.func(args)


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
    code = ("import sys, lcpfn.evaluation.run, lcpfn.evaluation.report, lcpfn.evaluation.cli; "
            "assert 'pymc' not in sys.modules and 'lcpfn.mcmc' not in sys.modules")  # fmt: skip
    subprocess.run([sys.executable, "-c", code], check=True)


def test__import__the_cli_module_adds_only_the_standard_library():
    # `lcpfn --help` builds the evaluate parser: no torch, numpy or matplotlib on top of `import lcpfn`
    code = (
        "import sys, lcpfn; before = set(sys.modules); import lcpfn.evaluation.cli, lcpfn.evaluation; "
        "new = {m.split('.')[0] for m in set(sys.modules) - before}; "
        "assert not new & {'torch', 'numpy', 'matplotlib', 'tqdm'}, new; "
        "assert 'torch' not in sys.modules and 'matplotlib' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test__package__re_exports_every_public_name_of_its_modules_lazily():
    names = set(lcpfn.evaluation.__all__)
    for sub in ("protocol", "datasets", "forecasters", "run", "report", "plots", "cli"):
        module = __import__(f"lcpfn.evaluation.{sub}", fromlist=["_"])
        assert set(getattr(module, "__all__", [])) <= names, sub
    for name in names:
        assert getattr(lcpfn.evaluation, name) is not None
    with pytest.raises(AttributeError, match="nope"):
        lcpfn.evaluation.nope  # noqa: B018


# --------------------------------------------------------------------------------------------------
# the cache key: weights, options and the source of the code that makes the numbers
# --------------------------------------------------------------------------------------------------
def test__code_modules__follow_the_imports_of_the_predictor(tiny):
    names = [m.__name__ for m in _code_modules([*_COMMON_CODE, sys.modules[type(tiny).__module__]])]
    for needed in ("lcpfn.predictor", "lcpfn.model", "lcpfn.bar_distribution", "lcpfn.forecast",
                   "lcpfn.validation", "lcpfn.metrics"):  # fmt: skip
        assert needed in names
    assert "lcpfn" not in names and not any(n.startswith("lcpfn.evaluation") for n in names)
    assert all(Path(m.__file__).is_file() for m in _code_modules(_COMMON_CODE))


def test__code_hash__changes_with_the_source_of_any_reached_module(tmp_path, monkeypatch):
    pkg = tmp_path / "codehash_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from codehash_pkg.b import helper\n\nclass P:\n    pass\n")
    (pkg / "b.py").write_text("def helper():\n    return 1\n")
    (pkg / "c.py").write_text("X = 1\n")  # not imported by a: not part of a's key
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        import codehash_pkg.a
        import codehash_pkg.c

        before = _code_hash("id", [codehash_pkg.a])
        assert _code_hash("id", [codehash_pkg.a]) == before
        assert _code_hash("other id", [codehash_pkg.a]) != before
        (pkg / "c.py").write_text("X = 2\n")
        assert _code_hash("id", [codehash_pkg.a]) == before
        (pkg / "b.py").write_text("def helper():\n    return 2\n")  # a dependency of a dependency
        assert _code_hash("id", [codehash_pkg.a]) != before
    finally:
        for name in [n for n in sys.modules if n.split(".")[0] == "codehash_pkg"]:
            del sys.modules[name]


def test__code_hash__a_module_without_source_is_an_error_not_a_placeholder():
    with pytest.raises(LCPFNError, match="no source file for module 'sourceless'"):
        _code_hash("id", [types.ModuleType("sourceless")])


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
            # the normalised harness maps with the bounds but, like the paper, keeps the forecast
            # untruncated: the API's keep_within=(None, None)
            api = tiny.predict(y[:c], max_epochs=len(y), direction=direction, bounds=bounds, keep_within=(None, None))
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
    # with both bounds known the forecaster sees the same curve either way; raw inputs are kept
    # within the bounds (truncated and renormalised), so every true value, which lies inside, is
    # at least as likely as untruncated
    norm = evaluate([fc], [acc.head(4)], cutoffs=[0.2, 0.8])
    raw = evaluate([fc], [acc.head(4)], cutoffs=[0.2, 0.8], inputs="raw")
    for a, b in zip(norm, raw):
        assert b.ll >= a.ll - 1e-6
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


class FakeClock:
    """A clock that only moves when told to: stands in for both the wall and the CPU clock."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class SetupThenPerCurve(Counting):
    """Takes 100 s (on ``clock``) of one-time setup in its first call, then 1 s per curve."""

    def __init__(self, inner, clock: FakeClock) -> None:
        super().__init__(inner)
        self.clock = clock

    def predict(self, curves, **kw):
        self.clock.now += 100.0 if self.calls == 0 else float(np.atleast_2d(curves).shape[0])
        return super().predict(curves, **kw)


def test__evaluate__one_time_setup_is_not_charged_to_any_curve(tiny, small_prior, monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(lcpfn.evaluation.run, "perf_counter", clock)
    monkeypatch.setattr(lcpfn.evaluation.run, "process_time", clock)
    slow = SetupThenPerCurve(tiny, clock)
    res = evaluate([forecaster_from_predictor("slow", slow, key="s")], [small_prior.head(4)], cutoffs=[0.2])
    assert (slow.calls, slow.curves) == (2, 1 + 4)  # the warm-up, then one chunk of the 4 curves
    # each curve carries exactly its own second: none of the 100 s setup (without the warm-up: 26 s)
    assert [r.seconds for r in res] == [1.0] * 4
    assert [r.cpu_seconds for r in res] == [1.0] * 4


NOISY = logging.getLogger("lcpfn.tests.noisy")  # an lcpfn logger that exists before any evaluation


class WarnsEveryCall(Counting):
    """Logs the same warning on every call, and one that differs from call to call."""

    def predict(self, curves, **kw):
        NOISY.warning("the same warning")
        NOISY.warning("warning of call %d", self.calls)
        return super().predict(curves, **kw)


def test__evaluate__each_distinct_warning_is_logged_once_with_a_count(tiny, small_prior, caplog):
    noisy = WarnsEveryCall(tiny)
    with caplog.at_level(logging.WARNING):
        evaluate([forecaster_from_predictor("n", noisy, key="n", chunk_size=3)], [small_prior.head(6)])
    assert noisy.calls == 1 + 2 * 4  # the warm-up, then two chunks per cutoff
    mine = [r.getMessage() for r in caplog.records if r.name == NOISY.name]
    assert mine.count("the same warning") == 1
    assert sorted(m for m in mine if m != "the same warning") == sorted(
        f"warning of call {k}" for k in range(noisy.calls)
    )  # distinct warnings are all shown
    counts = [r.getMessage() for r in caplog.records if r.name == "lcpfn.evaluation.run"]
    assert counts == [f"lcpfn.tests.noisy repeated that warning {noisy.calls - 1} more time(s) in this "
                      "evaluation: the same warning"]  # fmt: skip
    caplog.clear()
    NOISY.warning("the same warning")  # the filter is gone after the run
    assert [r.getMessage() for r in caplog.records] == ["the same warning"]


def test__evaluate__the_input_check_warns_once_for_prefixes_outside_the_unit_interval(tiny, caplog):
    base = np.linspace(0.2, 0.6, 100)
    curves = tuple(np.r_[-0.3, base[1:]] + 0.01 * k for k in range(4))  # first value 0.3 below 0: noise
    ds = EvalDataset(name="p", kind="prior", curves=curves, ids=tuple("abcd"),
                     maximize=np.ones(4, bool), low=np.zeros(4), high=np.ones(4))  # fmt: skip
    with caplog.at_level(logging.WARNING):
        res = evaluate([forecaster_from_predictor("tiny", tiny, key="t", chunk_size=1)], [ds])
    assert all(r.error is None for r in res)
    warned = [r for r in caplog.records if r.levelno == logging.WARNING and r.name != "lcpfn.evaluation.run"]
    assert len(warned) == 1 and "outside [0, 1]" in warned[0].getMessage()


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
    argv = ["-f", f"P=pfn:{tiny_model_dir}", "last@3", "--n-curves", "6", "--out", str(out),
            "--plot-curves", "2", "--no-progress"]  # fmt: skip
    assert evaluate_cli(argv) == 0
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
    assert evaluate_cli([*argv, "--no-plots"]) == 0  # everything from the cache
    assert capsys.readouterr().out.split("written:")[0] == printed.split("written:")[0]
    assert len((out / "cache.jsonl").read_text().splitlines()) == n_cached


@pytest.mark.slow
def test__cli__real_data_run(tiny_model_dir, data_dir, tmp_path, capsys):
    out = tmp_path / "ev"
    argv = ["-f", f"pfn:{tiny_model_dir}", "-d", "real", "--data-dir", str(data_dir), "--sources",
            "accsrc", "losssrc", "--split", "holdout", "--out", str(out), "--no-plots", "--no-progress"]  # fmt: skip
    assert evaluate_cli(argv) == 0
    printed = capsys.readouterr().out
    assert "| accsrc | holdout |" in printed and "| losssrc | holdout |" in printed
    assert "paper P1" not in printed  # the paper's rows are prior-curve numbers
    assert evaluate_cli(argv + ["--inputs", "raw"]) == 0
    assert "--inputs raw" in capsys.readouterr().out  # the report's command says how inputs were fed


@pytest.mark.parametrize(
    "extra, match",
    [(["-f", "bogus"], "unknown forecaster kind"), (["--cutoffs", "0", "0.5"], "got 0.0"),
     (["-d", "real", "--data-dir", "/no/such/dir"], "does not exist"), (["--n-curves", "0"], "at least 1"),
     (["--curves", "/no/such.npz"], "does not exist"), (["--threads", "0"], "at least 1")],
)  # fmt: skip
def test__cli__bad_input_raises_an_error_naming_it(extra, match, tmp_path):
    # lcpfn.cli.main turns an LCPFNError into "lcpfn evaluate: error: ..." and exit status 2
    with pytest.raises(LCPFNError, match=match):
        evaluate_cli(["-f", "last", "--n-curves", "2", "--out", str(tmp_path), "--no-progress", *extra])


def test__head_to_head__pairs_the_same_problems_and_skips_rejections():
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


def test__format_head_to_head__small_ratios_keep_their_digits():
    row = dict(a="a", b="b", dataset="d", cutoff=0.1, n_curves=2, ll_diff=0.0, ll_diff_se=0.5, a_wins=0.5)
    table = format_head_to_head([HeadToHead(**row, speedup=0.0002, cpu_speedup=0.37),
                                 HeadToHead(**row, speedup=2.5, cpu_speedup=math.nan)])  # fmt: skip
    assert "| 0.0002× | 0.37× |" in table and "| 2.5× | – |" in table


@pytest.mark.parametrize("ratio", np.logspace(-9, 5, 57))
def test__fmt_ratio__never_prints_a_nonzero_ratio_as_zero(ratio):
    text = _fmt_ratio(float(ratio))
    assert text.endswith("×") and "e" not in text
    assert float(text[:-1].replace(",", "")) == pytest.approx(ratio, rel=0.05)  # two significant digits
