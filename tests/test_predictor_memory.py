"""Forecasts in memory that does not grow with the batch (issue 19, item 5): the compact
:class:`~lcpfn.bar_forecast.BarForecast`, the streaming :meth:`LCPFN.predict_iter` and the
``.npy`` reader it streams from."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
import torch

import lcpfn.bar_forecast as bar_forecast
import lcpfn.predictor as predictor
from lcpfn import LCPFN, InputError
from lcpfn.bar_distribution import BarDistribution
from lcpfn.forecast import Forecast
from lcpfn.predictor import BarForecast, head_input
from lcpfn.streaming import open_npy


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    return LCPFN.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def default():
    return LCPFN.from_pretrained("default")  # 1000 bins: the size the compact form is for


def _curves(n: int, t: int, seed: int = 0, *, scale: float = 1.0) -> np.ndarray:
    """``n`` noisy saturating curves of ``t`` epochs in about [0.2, 0.95] (times ``scale``)."""
    rng = np.random.default_rng(seed)
    epochs = np.arange(1, t + 1)
    top, start = rng.uniform(0.6, 0.95, (n, 1)), rng.uniform(0.2, 0.5, (n, 1))
    rate = rng.uniform(2.0, 30.0, (n, 1))
    y = top - (top - start) * np.exp(-epochs / rate) + rng.normal(0, 0.01, (n, t))
    return np.clip(y, 0.0, 1.0) * scale


# --- the reference: the implementation before issue 19, verbatim ----------------------------------
class _LogitsForecast(Forecast):
    """BarForecast as it was: all logits ``(n, H, K)`` kept, float64 probabilities cached."""

    def __init__(self, *, logits: torch.Tensor, bar: BarDistribution, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.logits = logits
        self.bar = bar
        self._p: torch.Tensor | None = None
        self._cum: torch.Tensor | None = None

    def _probs(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._p is None or self._cum is None:
            self._p = self.bar.probs(self.logits)
            self._cum = torch.cumsum(self._p, dim=-1)
        return self._p, self._cum

    def _z_quantile(self, p: float) -> np.ndarray:
        probs, cum = self._probs()
        return self.bar.icdf_probs(probs, p, cum).numpy()

    def _expand(self, z: np.ndarray, h: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        zt = torch.from_numpy(np.ascontiguousarray(z))
        if h is None:
            return self.logits, zt
        lg = self.logits[:, h : h + 1, :]
        return lg.expand(-1, zt.shape[1], -1), zt

    def _z_cdf(self, z: np.ndarray, h: int | None) -> np.ndarray:
        zt = torch.from_numpy(np.ascontiguousarray(z))
        probs, cum = self._probs()
        if h is not None:
            g = zt.shape[1]
            probs, cum = (t[:, h : h + 1, :].expand(-1, g, -1) for t in (probs, cum))
        return self.bar.cdf_probs(probs, zt, cum).numpy()

    def _z_log_prob(self, z: np.ndarray, h: int | None) -> np.ndarray:
        lg, zt = self._expand(z, h)
        return self.bar.log_prob(lg, zt.double()).double().numpy()

    def _z_mean(self) -> np.ndarray:
        return self.bar.mean_probs(self._probs()[0]).numpy()


def _logits_forecast(m: LCPFN, fc: BarForecast) -> _LogitsForecast:
    """The forecast ``fc`` as the old code made it: ``PFN.forward`` logits of the same inputs."""
    t_obs = int(fc.lengths[0])
    L = m.native_length
    scale = min(1.0, L / fc.max_epochs)
    ctx_idx = predictor._context_indices(t_obs, scale, L)
    z = fc.transform.to_model(fc.observed)
    n = fc.n_curves
    ctx_t = torch.as_tensor((ctx_idx + 1) * scale, dtype=torch.float32).expand(n, -1)
    qry_t = (torch.arange(t_obs + 1, fc.max_epochs + 1, dtype=torch.float32) * scale).expand(n, -1)
    with torch.no_grad():
        logits = m.model(ctx_t, torch.as_tensor(z[:, ctx_idx], dtype=torch.float32), qry_t).float()
    return _LogitsForecast(
        logits=logits, bar=m._bar_cpu, epochs=fc.epochs, observed=fc.observed, transform=fc.transform,
        direction=fc.direction, squeeze=False, bounds=fc.bounds,
    )


@pytest.mark.parametrize(
    "scale, direction, bounds",
    [(1.0, "maximize", "auto"), (1.0, "maximize", None), (100.0, "maximize", "infer"),
     (100.0, "maximize", (0, 100)), (2.0, "minimize", (0, None))],
)
def test__bar_forecast__every_method_matches_the_logits_implementation(default, scale, direction, bounds):
    curves = _curves(12, 20, seed=1, scale=scale)
    fc = default.predict(curves, max_epochs=100, direction=direction, bounds=bounds)
    assert isinstance(fc, BarForecast)
    ref = _logits_forecast(default, fc)
    span = scale  # the caller's range: tolerances are relative to it
    for q in (0.001, 0.05, 0.3, 0.5, 0.9, 0.999):
        np.testing.assert_allclose(fc.quantile(q), ref.quantile(q), rtol=0, atol=1e-3 * span)
    np.testing.assert_allclose(fc.mean(), ref.mean(), rtol=0, atol=1e-3 * span)
    for a, b in zip(fc.interval(0.8), ref.interval(0.8)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-3 * span)
    values = np.random.default_rng(2).uniform(-0.2, 1.2, fc.quantile(0.5).shape) * scale
    np.testing.assert_allclose(fc.cdf(values), ref.cdf(values), rtol=0, atol=1e-3)
    lp, lp_ref = fc.log_prob(values), ref.log_prob(values)
    assert np.array_equal(np.isfinite(lp), np.isfinite(lp_ref))
    ok = np.isfinite(lp_ref)
    np.testing.assert_allclose(lp[ok], lp_ref[ok], rtol=1e-3, atol=1e-3)
    grid = np.linspace(-0.1, 1.1, 41) * scale
    for epoch in (21, 60, 100):
        a, b = fc.log_prob_at(grid, epoch=epoch), ref.log_prob_at(grid, epoch=epoch)
        assert np.array_equal(np.isfinite(a), np.isfinite(b))
        np.testing.assert_allclose(a[np.isfinite(b)], b[np.isfinite(b)], rtol=1e-3, atol=1e-3)
    threshold = np.median(curves[:, -1])
    for name in ("prob_above", "prob_below", "prob_improve"):
        for epoch in (None, 50):
            got = getattr(fc, name)(threshold, epoch=epoch)
            np.testing.assert_allclose(got, getattr(ref, name)(threshold, epoch=epoch), rtol=0, atol=1e-3)


def test__head_input__the_head_of_it_is_the_forward_pass(default):
    m = default.model
    rng = torch.Generator().manual_seed(0)
    ctx_t = torch.arange(1, 11, dtype=torch.float32).expand(3, -1)
    ctx_y = torch.rand(3, 10, generator=rng)
    qry_t = torch.arange(11, 101, dtype=torch.float32).expand(3, -1)
    with torch.no_grad():
        torch.testing.assert_close(m.head(head_input(m, ctx_t, ctx_y, qry_t)), m(ctx_t, ctx_y, qry_t),
                                   rtol=0, atol=1e-5)


# --- what a forecast holds, and what a method allocates ---------------------------------------------
def _held_bytes(fc: BarForecast) -> int:
    """Bytes of the tensors a forecast holds: its features and the decoded chunk it keeps."""
    total = fc.features.numel() * fc.features.element_size()
    if fc._memo is not None:
        d = fc._memo[1]
        parts = [d.logits, *(d._pc or ())]
        total += sum(t.numel() * t.element_size() for t in parts)
    return total


def test__bar_forecast__holds_4_d_model_bytes_per_marginal_and_one_decoded_chunk(default):
    n, t, max_epochs = 200, 20, 100
    fc = default.predict(_curves(n, t), max_epochs=max_epochs)
    h, d, k = max_epochs - t, default.model.config.d_model, default._bar_cpu.num_bins
    assert fc.features.shape == (n, h, d) and fc.features.dtype == torch.float32
    assert _held_bytes(fc) == 4 * d * n * h  # 512 B per marginal, nothing else yet
    fc.quantile(0.1), fc.mean(), fc.cdf(fc.median()), fc.log_prob(fc.median()), fc.prob_improve(0.8)
    rows = bar_forecast.DECODE_BINS // k
    assert n * h > rows  # several chunks: the forecast keeps one, not all
    assert _held_bytes(fc) <= 4 * d * n * h + rows * k * (4 + 8 + 8)


class _CountingHead(torch.nn.Module):
    """Wraps a head and records the rows of every call."""

    def __init__(self, head: torch.nn.Module) -> None:
        super().__init__()
        self.head = head
        self.rows: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.rows.append(int(x.shape[0]))
        return self.head(x)


def test__bar_forecast__small_chunks_give_the_same_results_and_never_exceed_the_budget(model, monkeypatch):
    curves = [_curves(1, 12)[0], *_curves(5, 20, seed=3)]
    big = model.predict(curves, max_epochs=60, bounds=(0, 1))
    monkeypatch.setattr(bar_forecast, "DECODE_BINS", 7 * model._bar_cpu.num_bins)  # 7 marginals a chunk
    small = model.predict(curves, max_epochs=60, bounds=(0, 1))
    heads = []
    for _, part, _ in small.parts:
        part.head = _CountingHead(part.head)
        heads.append(part.head)
    grid = np.linspace(0.0, 1.0, 30)  # more values than a chunk holds: the grid is split too
    values = big.median()
    for name, args, kwargs in [
        ("quantile", (0.2,), {}), ("mean", (), {}), ("cdf", (values,), {}),
        ("log_prob", (np.nan_to_num(values, nan=0.5),), {}), ("log_prob_at", (grid,), {"epoch": 40}),
        ("prob_improve", (0.7,), {}), ("prob_below", (0.7,), {"epoch": 30}),
    ]:
        np.testing.assert_allclose(getattr(small, name)(*args, **kwargs), getattr(big, name)(*args, **kwargs),
                                   rtol=0, atol=1e-5, err_msg=name)  # float32 logits, rows batched apart
    assert all(max(h.rows) <= 7 for h in heads) and sum(len(h.rows) for h in heads) > 20


def test__bar_forecast__one_chunk_is_decoded_once_for_every_method(model):
    fc = model.predict(_curves(4, 20), max_epochs=50, bounds=(0, 1))
    fc.head = head = _CountingHead(fc.head)
    fc.quantile(0.1), fc.quantile(0.9), fc.mean(), fc.cdf(fc.median()), fc.log_prob(fc.median())
    assert head.rows == [4 * 30]
    torch.testing.assert_close(fc.logits, model.model.head(fc.features))  # decoded for inspection


def test__bar_forecast__query_memory_stays_flat_where_the_logits_took_gigabytes(tmp_path):
    """50,000 marginals of 1000 bins: the old float64 probabilities and cumsum were 800 MB."""
    script = r"""
import json, numpy as np, torch
from lcpfn.bar_distribution import BarDistribution
from lcpfn.bar_forecast import BarForecast
from lcpfn.normalization import ValueTransform

def kb(field):
    return int(next(l for l in open("/proc/self/status") if l.startswith(field)).split()[1])

torch.manual_seed(0)
n, h, d, k = 500, 100, 32, 1000
head = torch.nn.Linear(d, k)
fc = BarForecast(features=torch.randn(n, h, d), head=head, bar=BarDistribution(torch.linspace(0, 1, k + 1)),
                 epochs=np.arange(2, h + 2), observed=np.full((n, 1), 0.5), transform=ValueTransform.identity(n),
                 direction="maximize", squeeze=False)
fc.quantile(0.5)  # warm up the allocator and torch's kernels
base = kb("VmRSS")
fc.quantile(0.95); fc.mean(); fc.cdf(np.full((n, h), 0.5)); fc.log_prob(np.full((n, h), 0.5)); fc.prob_improve(0.5)
print(json.dumps({"base_kb": base, "peak_kb": kb("VmHWM")}))
"""
    if not os.path.exists("/proc/self/status"):
        pytest.skip("needs /proc (Linux)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    grew_mb = (got["peak_kb"] - got["base_kb"]) / 1024
    # one decoded chunk is 2^22 bins: ~84 MB of logits, probabilities and cumsum, plus temporaries
    assert grew_mb < 400, f"the queries grew the process by {grew_mb:.0f} MB"


# --- long horizons ------------------------------------------------------------------------------
def test__predict__a_long_horizon_is_split_into_passes_with_the_same_result(model, monkeypatch):
    curve = _curves(1, 30)[0]
    monkeypatch.setattr(predictor, "TOKENS_PER_PASS", 1 << 20)
    whole = model.predict(curve, max_epochs=5000)
    monkeypatch.setattr(predictor, "TOKENS_PER_PASS", 700)  # 8 passes of the 4970 epochs
    split = model.predict(curve, max_epochs=5000)
    torch.testing.assert_close(split.features, whole.features, rtol=0, atol=1e-5)
    np.testing.assert_allclose(split.quantile(0.9), whole.quantile(0.9), rtol=0, atol=1e-5)


# --- predict_iter ---------------------------------------------------------------------------------
def test__predict_iter__chunks_in_order_equal_predict_on_each(model):
    curves = _curves(23, 20)
    parts = list(model.predict_iter(curves, max_epochs=60, chunk_size=10))
    assert [p.n_curves for p in parts] == [10, 10, 3]
    whole = model.predict(curves, max_epochs=60)
    got = np.concatenate([p.quantile(0.3) for p in parts])
    np.testing.assert_allclose(got, whole.quantile(0.3), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(np.concatenate([p.observed for p in parts]), curves)


@pytest.mark.parametrize("layout", ["array", "list", "dataframe", "npy", "iterator"])
def test__predict_iter__every_layout_streams_the_same_forecasts(model, layout, tmp_path):
    curves = _curves(9, 15, seed=4)
    ragged = [c[: 10 + i % 3] for i, c in enumerate(curves)]
    padded = np.full((9, 15), np.nan)
    for i, c in enumerate(ragged):
        padded[i, : len(c)] = c
    if layout == "array":
        source: Any = padded
    elif layout == "list":
        source = ragged
    elif layout == "dataframe":
        pd = pytest.importorskip("pandas")
        source = pd.DataFrame({f"run{i}": pd.Series(c) for i, c in enumerate(ragged)})
    elif layout == "npy":
        np.save(tmp_path / "c.npy", padded)
        source = open_npy(tmp_path / "c.npy")
    else:
        source = iter(ragged)
    parts = list(model.predict_iter(source, max_epochs=40, chunk_size=4))
    assert [p.n_curves for p in parts] == [4, 4, 1]
    whole = model.predict(ragged, max_epochs=40)
    offset = 0
    for p in parts:
        rows = slice(offset, offset + p.n_curves)
        np.testing.assert_array_equal(p.lengths, whole.lengths[rows])
        cut = int(p.lengths.min()) - int(whole.lengths.min())  # a part starts at its shortest curve
        np.testing.assert_allclose(p.median(), whole.median()[rows, cut:], rtol=0, atol=1e-6)
        offset += p.n_curves


def test__predict_iter__auto_bounds_are_decided_from_every_curve_of_an_array(model):
    curves = _curves(6, 20)
    curves[5] *= 100  # the last chunk alone is not in [0, 1]: the call as a whole is inferred
    whole = model.predict(curves, max_epochs=40)
    parts = list(model.predict_iter(curves, max_epochs=40, chunk_size=2))
    assert whole.bounds == (None, None) and {p.bounds for p in parts} == {(None, None)}
    np.testing.assert_allclose(parts[0].median(), whole.median()[:2], rtol=0, atol=1e-6)


def test__predict_iter__an_iterator_keeps_the_first_chunks_rule_and_says_where_it_breaks(model):
    curves = list(_curves(6, 20))
    curves[4] = curves[4] * 100
    stream = model.predict_iter(iter(curves), max_epochs=40, chunk_size=2)
    assert next(stream).bounds == (0.0, 1.0)
    next(stream)
    with pytest.raises(InputError, match=r"^curves 4\.\.5: .*curve 4"):
        next(stream)


def test__predict_iter__a_bad_curve_is_named_by_its_place_in_the_whole_input(model):
    curves = _curves(7, 10)
    curves[5, 3] = np.inf
    stream = model.predict_iter(curves, max_epochs=40, chunk_size=3)
    next(stream)
    with pytest.raises(InputError, match=r"^curves 3\.\.5: curves must be finite, but has inf at curve 5, epoch 4"):
        next(stream)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"max_epochs": 1}, "max_epochs must be at least 2"), ({"chunk_size": 0}, "chunk_size must be a positive"),
     ({"chunk_size": 2.5}, "chunk_size must be a positive"), ({"direction": "up"}, "direction must be"),
     ({"bounds": (1, 0)}, "bounds"), ({"batch_size": 0}, "batch_size must be"), ({"reading": "x"}, "reading")],
)
def test__predict_iter__options_are_checked_before_any_curve_is_read(model, kwargs, match):
    def never():
        raise AssertionError("a curve was read before the options were checked")
        yield

    with pytest.raises(InputError, match=match):
        model.predict_iter(never(), **{"max_epochs": 40, **kwargs})


def test__predict_iter__empty_input_and_an_iterator_of_values_are_refused(model):
    with pytest.raises(InputError, match="curves must contain at least one curve, but is empty"):
        model.predict_iter(np.empty((0, 5)), max_epochs=40)
    with pytest.raises(InputError, match="the iterable yielded none"):
        list(model.predict_iter(iter([]), max_epochs=40))
    with pytest.raises(InputError, match="must yield 1-D curves, but item 0 has 0 dimensions"):
        list(model.predict_iter(iter([0.3, 0.4, 0.5]), max_epochs=40))


def test__predict_iter__default_chunks_are_one_decoded_chunk(default):
    parts = default.predict_iter(_curves(50, 20), max_epochs=100)
    first = next(parts)
    assert first.n_curves == bar_forecast.DECODE_BINS // (1000 * 99) == 42
    first.head = head = _CountingHead(first.head)
    first.quantile(0.05), first.quantile(0.95), first.mean(), first.prob_improve(0.9)
    assert head.rows[0] == 42 * 80 and len(head.rows) == 2  # all marginals once, then one epoch


def test__predict_iter__progress_bar_counts_curves(model, capsys):
    list(model.predict_iter(_curves(5, 20), max_epochs=30, chunk_size=2, progress=True))
    err = capsys.readouterr().err
    assert "5/5" in err and "curve" in err


# --- the .npy reader ------------------------------------------------------------------------------
@pytest.mark.parametrize("order, dtype", [("C", "<f8"), ("F", "<f4"), ("C", ">f8"), ("F", "<i2")])
def test__open_npy__reads_any_rows_of_any_layout(tmp_path, order, dtype):
    a = np.asarray(np.arange(35).reshape(7, 5) * 3, dtype=dtype, order=order)
    np.save(tmp_path / "a.npy", a)
    rows = open_npy(tmp_path / "a.npy")
    assert rows.shape == (7, 5) and len(rows) == 7
    for s in (slice(0, 7), slice(2, 5), slice(6, 9), slice(3, 3)):
        got = rows[s]
        assert got.dtype == np.float64
        np.testing.assert_array_equal(got, a[s].astype(np.float64))


def test__open_npy__a_1d_array_is_one_curve(tmp_path):
    np.save(tmp_path / "a.npy", np.linspace(0, 1, 6))
    rows = open_npy(tmp_path / "a.npy")
    assert rows.shape == (1, 6)
    np.testing.assert_array_equal(rows[0:1], np.linspace(0, 1, 6)[None])


def _savez(path, **arrays) -> None:
    with open(path, "wb") as f:  # an .npz archive under a .npy name (np.savez would add .npz)
        np.savez(f, **arrays)


@pytest.mark.parametrize(
    "make, match",
    [(lambda p: np.save(p, np.zeros((2, 3, 4))), r"shape \(2, 3, 4\); curves must be 2-D"),
     (lambda p: np.save(p, np.array([["a", "b"]])), "holds <U1 values"),
     (lambda p: np.save(p, np.array([[1, None]], dtype=object), allow_pickle=True), "holds object values"),
     (lambda p: p.write_bytes(b"epoch,value\n1,0.5\n"), "not a .npy array of numbers"),
     (lambda p: _savez(p, a=np.zeros(3)), "not a .npy array of numbers"),
     (lambda p: (np.save(p, np.zeros((1000, 10))), p.write_bytes(p.read_bytes()[:5000])), "truncated")],
)
def test__open_npy__bad_files_raise_input_errors(tmp_path, make, match):
    p = tmp_path / "bad.npy"
    make(p)
    with pytest.raises(InputError, match=match):
        open_npy(p)


def test__open_npy__a_missing_file_is_named(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        open_npy(tmp_path / "none.npy")
