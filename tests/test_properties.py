"""Properties over generated inputs (hypothesis): ``predict`` and ``from_pretrained`` are never
silently wrong.

* ``predict`` (the tiny PFN and :class:`~lcpfn.baselines.LastValuePredictor`) over curves of any
  values (finite, NaN, infinite, huge, subnormal), lengths 0..50 (one curve, equal or mixed
  lengths, NaN-padded rows), any ``max_epochs``, ``direction`` and ``bounds``: every call either
  raises a ``ValueError`` subclass whose message names an argument, or returns quantiles that are
  finite, non-decreasing in ``q`` and within the known bounds, and a mean that is too.
* ``from_pretrained`` over mutated ``config.json`` files (any JSON value in any field, deep
  nesting, huge integers, removed and added keys): it raises ``CheckpointError`` /
  ``UnknownModelError`` or loads a model that forecasts as above.

The example budget is fixed: 200 examples per property (the same ones every run), which CI runs;
``LCPFN_HYPOTHESIS_PROFILE=thorough`` runs 10,000 random ones per property, by hand.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from lcpfn import LCPFN, CheckpointError, UnknownModelError  # noqa: E402
from lcpfn.baselines import LastValuePredictor  # noqa: E402
from lcpfn.errors import LCPFNError  # noqa: E402
from lcpfn.normalization import check_bounds  # noqa: E402

_BUDGETS = {"ci": 200, "thorough": 10_000}
_PROFILE = os.environ.get("LCPFN_HYPOTHESIS_PROFILE", "ci")
if _PROFILE not in _BUDGETS:
    raise ValueError(f"LCPFN_HYPOTHESIS_PROFILE must be one of {sorted(_BUDGETS)}, but got {_PROFILE!r}")
# per test, not a global profile: other test modules keep their own settings
BUDGET = settings(
    max_examples=_BUDGETS[_PROFILE],
    deadline=None,  # two shared cores: timing says nothing here
    derandomize=_PROFILE == "ci",  # CI sees the same examples every run
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

QS = (0.001, 0.05, 0.5, 0.95, 0.999)
NAMES = re.compile(r"curve|max_epochs|direction|bounds")

# --- generated inputs ---------------------------------------------------------------------------------
SPECIAL = [0.0, -0.0, 0.5, 1.0, 100.0, 5e-324, 1e-320, 1e-150, -1e-150, 1e150, -1e150, 1.5e150, 1e308, -1e308,
           1.7976931348623157e308, math.nan, math.inf, -math.inf]
FLOATS = st.one_of(
    st.floats(-0.5, 1.5),  # the model's own scale
    st.floats(-1e3, 1e3),
    st.floats(allow_nan=True, allow_infinity=True),  # anything, subnormals and 1e308 included
    st.sampled_from(SPECIAL),
)


def scaled(min_size: int, max_size: int) -> st.SearchStrategy[list[float]]:
    """A clean curve at one magnitude (so that many generated calls get through to a forecast)."""
    return st.tuples(
        st.sampled_from([1e-300, 1e-6, 1.0, 1.0, 100.0, 1e6, 1e149]), st.floats(-1.0, 1.0),
        st.lists(st.floats(0.0, 1.0), min_size=min_size, max_size=max_size),
    ).map(lambda t: [t[0] * (t[1] + v) for v in t[2]])


def with_special(curve: list[float], data: tuple[int, float]) -> list[float]:
    """``curve`` with one value replaced by an extreme one (NaN, infinity, 1e308, a subnormal, ...)."""
    i, v = data
    return [v if k == i % len(curve) else c for k, c in enumerate(curve)] if curve else curve


def any_curve(min_size: int, max_size: int) -> st.SearchStrategy[list[float]]:
    clean = scaled(max(min_size, 1), max_size) if max_size >= 1 else st.just([])
    return st.one_of(clean, clean, st.lists(FLOATS, min_size=min_size, max_size=max_size),
                     st.tuples(clean, st.tuples(st.integers(0, 49), st.sampled_from(SPECIAL))).map(
                         lambda t: with_special(*t)))


def _padded(rows: list[list[float]]) -> np.ndarray:
    out = np.full((len(rows), max(len(r) for r in rows)), np.nan)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


def _longest(curves) -> int:
    if isinstance(curves, np.ndarray):
        return curves.shape[-1]
    return max((len(c) for c in curves if isinstance(c, list)), default=len(curves))


SAME_LENGTH = st.integers(0, 50).flatmap(lambda t: st.lists(any_curve(t, t), min_size=1, max_size=4)).map(np.array)
RAGGED = st.lists(any_curve(0, 50), min_size=1, max_size=4)
CURVES = st.one_of(any_curve(0, 50), SAME_LENGTH, RAGGED, RAGGED.filter(lambda rows: any(rows)).map(_padded))
ANY_MAX_EPOCHS = st.one_of(st.integers(-3, 120),
                           st.sampled_from([10**9, 2**62, 100_001, 2.5, "10", None, True, np.int64(60)]))


@st.composite
def curves_and_max_epochs(draw) -> tuple[object, object]:
    """Curves and a horizon: mostly a valid one past the longest curve, else anything."""
    curves = draw(CURVES)
    if draw(st.integers(0, 3)):
        return curves, max(2, _longest(curves) + draw(st.integers(1, 60)))
    return curves, draw(ANY_MAX_EPOCHS)


DIRECTION = st.one_of(st.sampled_from(["maximize", "minimize"]), st.sampled_from(["maximize", "minimize"]),
                      st.sampled_from(["maximize", "minimize"]), st.sampled_from(["up", None, 1]))
SIDE = st.one_of(st.none(), FLOATS)
BOUNDS = st.one_of(
    st.none(), st.just("auto"), st.just("infer"), st.tuples(SIDE, SIDE),
    st.tuples(FLOATS, FLOATS).map(lambda p: tuple(sorted(p))),  # low < high more often
    st.sampled_from([(0.0, 1.0), (0.0, 100.0), (0.0, None), (None, 100.0), (None, None), (-1e150, 1e150), (0, 1e-320),
                     "guess", (1,), 5, (0, 1, 2), ("a", None)]),
)


@pytest.fixture(scope="module")
def predictors(tiny_model_dir):
    return {"pfn": LCPFN.from_pretrained(tiny_model_dir), "last value": LastValuePredictor()}


def _check_forecast(fc, bounds) -> None:
    """Finite, non-decreasing in q, within the known bounds (NaN only at epochs a curve observed)."""
    seen = fc.epochs[None, :] <= fc.lengths[:, None]
    known = fc.transform.limits
    if bounds is None:
        assert known == (None, None)
    elif not isinstance(bounds, str):
        assert known == check_bounds(bounds)  # the sides the caller gave are the ones kept
    else:
        assert known == (fc.bounds if bounds == "auto" else (None, None))
    low, high = (-np.inf if known[0] is None else known[0]), (np.inf if known[1] is None else known[1])
    qs = np.stack([np.atleast_2d(fc.quantile(q)) for q in QS])  # (Q, n, H)
    mean = np.atleast_2d(fc.mean())
    for a in (*qs, mean):
        assert np.all(np.isnan(a) == seen), "NaN exactly at the observed epochs"
        v = a[~seen]
        assert np.all(np.isfinite(v)) and np.all((v >= low) & (v <= high)), (v.min(), v.max(), known)
    assert np.all(np.diff(qs, axis=0)[:, ~seen] >= 0), "quantiles non-decreasing in q"
    median = np.where(seen, 0.0, qs[2])
    values = median[0] if fc.quantile(0.5).ndim == 1 else median
    lp = np.atleast_2d(fc.log_prob(values))[~seen]
    cdf = np.atleast_2d(fc.cdf(values))[~seen]
    assert not np.any(np.isnan(lp)) and np.all(lp < np.inf)
    assert np.all((cdf >= 0) & (cdf <= 1))


@BUDGET
@given(which=st.sampled_from(["pfn", "last value"]), call=curves_and_max_epochs(), direction=DIRECTION,
       bounds=BOUNDS)
def test__predict__is_finite_within_bounds_and_monotone_or_raises_a_named_value_error(
    predictors, which, call, direction, bounds
):
    curves, max_epochs = call
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # an overflow or invalid operation is a bug here
        try:
            fc = predictors[which].predict(curves, max_epochs=max_epochs, direction=direction, bounds=bounds)
        except ValueError as exc:
            assert isinstance(exc, LCPFNError), repr(exc)
            assert NAMES.search(str(exc)), str(exc)
            event(f"raised: {NAMES.search(str(exc)).group()}")  # type: ignore[union-attr]
            return
        event(f"forecast, limits {['none', 'one side', 'both'][sum(v is not None for v in fc.transform.limits)]}")
        _check_forecast(fc, bounds)


@st.composite
def bounded_call(draw) -> tuple[list[list[float]], int, str, tuple[float | None, float | None]]:
    """Valid curves at one magnitude (mixed lengths) and bounds that hold for them, some sides unknown."""
    m = draw(st.sampled_from([1e-100, 1e-3, 1.0, 1.0, 1e3, 1e100]))
    offset = draw(st.floats(-1.0, 1.0)) * m
    curves = draw(st.lists(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=40), min_size=1, max_size=3))
    curves = [[offset + m * v for v in c] for c in curves]
    values = [v for c in curves for v in c]
    margin = st.floats(1e-3, 2.0)
    low = draw(st.one_of(st.none(), margin.map(lambda g: min(values) - g * m)))
    high = draw(st.one_of(st.none(), margin.map(lambda g: max(values) + g * m)))
    max_epochs = max(len(c) for c in curves) + draw(st.integers(1, 60))
    return curves, max_epochs, draw(st.sampled_from(["maximize", "minimize"])), (low, high)


@BUDGET
@given(which=st.sampled_from(["pfn", "last value"]), call=bounded_call())
def test__predict__bounds_that_hold_give_a_forecast_within_them(predictors, which, call):
    curves, max_epochs, direction, bounds = call
    event(f"limits {['none', 'one side', 'both'][sum(v is not None for v in bounds)]}")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        fc = predictors[which].predict(curves, max_epochs=max_epochs, direction=direction, bounds=bounds)
        _check_forecast(fc, bounds)


# --- from_pretrained over mutated configs ---------------------------------------------------------------
JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.integers(-3, 200), st.floats(allow_nan=True),
              st.text(max_size=10), st.sampled_from([10**30, -(10**30), 2**63, 10**7, 10**9, 0, -1, 1, 2, 4, 16])),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)
MODEL_FIELDS = ["seq_len", "num_bins", "d_model", "n_layers", "n_heads", "d_ff", "dropout", "head_hidden",
                "value_hidden"]
TOP_FIELDS = ["format", "format_version", "model", "prior", "normalization", "budget", "step", "final"]


@st.composite
def mutated_config(draw, base: dict) -> str:
    """``base`` (a config) with a few fields replaced, removed or added, as JSON text."""
    cfg = json.loads(json.dumps(base))
    nested = []  # (path, depth): values to wrap in deep nesting, written as text
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(["model", "model", "top", "new"]))
        section, key = (cfg.get("model"), draw(st.sampled_from(MODEL_FIELDS))) if where == "model" else (
            cfg, draw(st.sampled_from(TOP_FIELDS)) if where == "top" else draw(st.text(min_size=1, max_size=8)))
        if not isinstance(section, dict):
            continue
        action = draw(st.sampled_from(["value", "value", "value", "remove", "deep"]))
        if action == "remove":
            section.pop(key, None)
        elif action == "deep":
            section[key] = "__DEEP__"
            nested.append(draw(st.sampled_from([10, 500, 5_000, 100_000])))
        else:
            section[key] = draw(JSON)
    text = json.dumps(cfg)
    for depth in nested:
        text = text.replace('"__DEEP__"', "[" * depth + "1" + "]" * depth, 1)
    if draw(st.booleans()) and '"budget"' not in text:  # an integer of more digits than Python converts
        text = text[:-1] + ', "budget": 1' + "0" * draw(st.sampled_from([10, 4_400, 10_000])) + "}"
    return text


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory):
    import torch

    from lcpfn import checkpoint as ckpt
    from lcpfn.bar_distribution import BarDistribution
    from lcpfn.model import PFN, ModelConfig

    directory = tmp_path_factory.mktemp("small_checkpoint")
    torch.manual_seed(0)
    model = PFN(ModelConfig(num_bins=10, d_model=16, n_layers=1, n_heads=2, d_ff=32))
    ckpt.save_model(directory, model, BarDistribution(torch.linspace(-0.5, 1.5, 11)), prior={"name": "reference"},
                    extra={"step": 3, "final": True})
    return directory


_BASE = {"format": "lcpfn-checkpoint", "format_version": 1, "model": {}, "prior": {"name": "reference"},
         "normalization": "unit", "step": 3, "final": True}


@BUDGET
@given(data=st.data())
def test__from_pretrained__mutated_config_raises_checkpoint_error_or_loads_a_working_model(small_checkpoint, data):
    base = json.loads((Path(small_checkpoint) / "config.json").read_text())
    text = data.draw(mutated_config({**_BASE, **base}))
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "model"
        shutil.copytree(small_checkpoint, directory)
        (directory / "config.json").write_text(text)
        try:
            model = LCPFN.from_pretrained(directory)
        except (CheckpointError, UnknownModelError):
            event("refused")
            return
    event("loaded")
    try:
        fc = model.predict([0.2, 0.4, 0.5], max_epochs=12)
    except LCPFNError as exc:  # e.g. a normalization this lcpfn does not know
        assert "normalization" in str(exc), str(exc)
        return
    _check_forecast(fc, "auto")
