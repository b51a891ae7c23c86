"""The Streamlit app, driven by AppTest (CSV/paste parsing is tested in test_io.py)."""

from __future__ import annotations

import base64
import io
import json
import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("streamlit")
pytest.importorskip("plotly")
pytest.importorskip("pandas")

import pandas as pd  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

import lcpfn.app  # noqa: E402
from lcpfn import io as curve_io  # noqa: E402
from lcpfn.io import read_csv  # noqa: E402

APP = str(Path(lcpfn.app.__file__).parent / "streamlit_app.py")
TIMEOUT = 60  # seconds per AppTest run; the first one loads the model

ACC_CSV = b"epoch,val_acc\n" + b"".join(
    f"{e},{0.9 - 0.5 * e ** -0.7:.4f}\n".encode() for e in range(1, 21)
)
ACC = np.loadtxt(io.BytesIO(ACC_CSV), delimiter=",", skiprows=1)[:, 1]
WIDE_CSV = (
    b"epoch,a,b,c\n"
    + b"".join(
        f"{e},{0.8 - 0.4 * e ** -0.8:.4f},{0.7 - 0.4 * e ** -0.5:.4f},{(0.6 - 0.3 / e):.4f}\n".encode()
        if e <= 10
        else f"{e},{0.8 - 0.4 * e ** -0.8:.4f},{0.7 - 0.4 * e ** -0.5:.4f},\n".encode()
        for e in range(1, 16)
    )
)


def test__examples__are_package_data_and_parse():
    from lcpfn.app.streamlit_app import example_files

    files = example_files()
    assert set(files) == {"accuracy", "loss", "runs"}
    for name, path in files.items():
        cs = read_csv(path.read_bytes(), source=name)
        assert cs.max_length >= 10
    assert read_csv(files["runs"].read_bytes()).n_curves == 4


def test__parse_args__model_and_example_and_ignores_the_rest():
    from lcpfn.app.streamlit_app import parse_args

    args = parse_args(["-q", "tests", "--model", "reference", "--example", "loss", "--mod", "x"])
    assert (args.model, args.example) == ("reference", "loss")
    assert parse_args([]).model == "default"


def test__forecast_figure__long_forecasts_are_thinned_but_keep_the_last_epoch():
    from lcpfn.app.streamlit_app import MAX_PLOT_POINTS, QUANTILES, CurveForecast, forecast_figure

    epochs = np.arange(11, 5001)
    f = CurveForecast(
        name="c", observed=np.linspace(0.1, 0.5, 10), epochs=epochs,
        quantiles={q: np.full(len(epochs), q) for q in QUANTILES}, mean=np.full(len(epochs), 0.5),
        grid=None, density=None, p_best=0.5, p_target=None,
    )
    fig = forecast_figure([f], target=None)
    median = next(t for t in fig.data if t.name == "median forecast")
    assert len(median.x) <= MAX_PLOT_POINTS + 2
    assert median.x[0] == 10 and median.x[-1] == 5000  # joined to the last observation; ends at the horizon


def test__torch_threads__sets_and_restores_the_thread_count():
    import torch

    from lcpfn.app.streamlit_app import torch_threads

    before = torch.get_num_threads()
    with pytest.raises(RuntimeError), torch_threads(1):
        assert torch.get_num_threads() == 1
        raise RuntimeError
    assert torch.get_num_threads() == before


# --- the app, driven by AppTest ------------------------------------------------------------------------
@pytest.fixture
def app_argv(monkeypatch, tiny_model_dir):
    """Start the app as ``lcpfn app -- --model <tiny checkpoint>`` would."""
    monkeypatch.setattr(sys, "argv", ["streamlit_app.py", "--model", str(tiny_model_dir)])
    return tiny_model_dir


@pytest.fixture
def tiny_model(tiny_model_dir):
    from lcpfn import LCPFN

    return LCPFN.from_pretrained(str(tiny_model_dir))


def _predict(model, curves, **kwargs):
    """``model.predict`` on one torch thread, as the app runs it, so results match bit for bit."""
    from lcpfn.app.streamlit_app import torch_threads

    with torch_threads(1):
        return model.predict(curves, **kwargs)


def _run(at: AppTest) -> AppTest:
    at.run(timeout=TIMEOUT)
    assert not at.exception, [e.value for e in at.exception]
    return at


def _start() -> AppTest:
    return _run(AppTest.from_file(APP, default_timeout=TIMEOUT))


def _upload(at: AppTest, name: str, data: bytes, mime: str = "text/csv") -> AppTest:
    at.file_uploader(key="upload").upload(name, data, mime)
    return _run(at)


def _errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def _figures(at: AppTest) -> list[dict]:
    """The plotly charts on the page, in order, as plotly JSON with typed arrays decoded."""
    out = []
    for el in at.get("plotly_chart"):
        spec = json.loads(el.proto.spec)
        for trace in spec["data"]:
            for axis in ("x", "y"):
                v = trace.get(axis)
                if isinstance(v, dict) and "bdata" in v:
                    trace[axis] = np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"])
        out.append(spec)
    return out


def _trace(fig: dict, name: str) -> dict:
    matches = [t for t in fig["data"] if t.get("name") == name]
    assert matches, [t.get("name") for t in fig["data"]]
    return matches[0]


def _quantiles(at: AppTest) -> pd.DataFrame:
    tables = [d.value for d in at.dataframe if "median" in d.value.columns]
    assert len(tables) == 1
    return tables[0]


def test__app__without_data_prompts_for_it(app_argv):
    at = _start()
    assert not _errors(at)
    assert "Upload a CSV" in at.info[0].value
    assert not at.get("plotly_chart")
    assert not at.markdown  # nothing written by Streamlit's "magic" (bare strings in the script)


def test__app__upload_shows_the_models_forecast(app_argv, tiny_model):
    at = _upload(_start(), "run.csv", ACC_CSV)
    assert not _errors(at)
    fc = _predict(tiny_model, ACC, max_epochs=tiny_model.native_length, direction="maximize")

    table = _quantiles(at)
    np.testing.assert_array_equal(table["epoch"], fc.epochs)
    np.testing.assert_allclose(table["median"], fc.median(), rtol=1e-12)
    np.testing.assert_allclose(table["q05"], fc.quantile(0.05), rtol=1e-12)
    np.testing.assert_allclose(table["q95"], fc.quantile(0.95), rtol=1e-12)

    figs = _figures(at)
    assert len(figs) == 2  # the forecast and the density of the final value
    forecast = figs[0]
    observed = _trace(forecast, "observed")
    np.testing.assert_allclose(observed["y"], ACC)
    median = _trace(forecast, "median forecast")
    np.testing.assert_allclose(median["y"][1:], fc.median(), rtol=1e-12)  # [0] joins the last observation
    _trace(forecast, "50% band")
    _trace(forecast, "90% band")

    metrics = {m.label: m.value for m in at.metric}
    horizon = tiny_model.native_length
    assert metrics[f"Median at epoch {horizon}"] == f"{fc.median()[-1]:.4g}"
    best = float(ACC.max())
    assert metrics[f"P(final beats best so far {best:.4g})"] == f"{fc.prob_improve(best):.1%}"


def test__app__download_is_the_quantile_table(app_argv, monkeypatch):
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    saved = {}
    real = MemoryMediaFileStorage.load_and_get_id

    def record(self, path_or_data, mimetype, kind, filename=None):
        saved[filename] = (path_or_data, mimetype)
        return real(self, path_or_data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", record)
    at = _upload(_start(), "run.csv", ACC_CSV)
    assert at.get("download_button")[0].proto.label == "Download quantiles (CSV)"
    data, mime = saved["forecast_quantiles.csv"]
    assert mime == "text/csv"
    downloaded = pd.read_csv(io.BytesIO(data))
    table = _quantiles(at)
    assert list(downloaded.columns) == ["curve", "epoch", "q05", "q25", "median", "q75", "q95", "mean"]
    pd.testing.assert_frame_equal(downloaded, table.reset_index(drop=True), check_exact=False, rtol=1e-12)
    assert (np.diff(table[["q05", "q25", "median", "q75", "q95"]].to_numpy(), axis=1) >= 0).all()


def test__app__target_gives_the_probability_of_beating_it(app_argv, tiny_model):
    at = _upload(_start(), "run.csv", ACC_CSV)
    target_input = next(n for n in at.sidebar.number_input if n.label == "Target value (optional)")
    target_input.set_value(0.85)
    _run(at)
    fc = _predict(tiny_model, ACC, max_epochs=tiny_model.native_length, direction="maximize")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["P(final beats target 0.85)"] == f"{fc.prob_above(0.85):.1%}"


def test__app__total_epochs_sets_the_horizon(app_argv, tiny_model):
    at = _upload(_start(), "run.csv", ACC_CSV)
    epochs = next(n for n in at.sidebar.number_input if n.label == "Total epochs to forecast to")
    epochs.set_value(60)
    _run(at)
    table = _quantiles(at)
    assert table["epoch"].iloc[0] == 21 and table["epoch"].iloc[-1] == 60
    fc = _predict(tiny_model, ACC, max_epochs=60, direction="maximize")
    np.testing.assert_allclose(table["median"], fc.median(), rtol=1e-12)


def test__app__direction_is_guessed_and_can_be_overridden(app_argv, tiny_model):
    loss = np.array([0.9, 0.7, 0.55, 0.47, 0.42, 0.4, 0.39])
    at = _upload(_start(), "loss.csv", b"loss\n" + "\n".join(map(str, loss)).encode())
    direction = next(r for r in at.sidebar.radio if r.label == "Direction")
    assert direction.value == "minimize"
    table = _quantiles(at)
    np.testing.assert_allclose(
        table["median"],
        _predict(tiny_model, loss, max_epochs=tiny_model.native_length, direction="minimize").median(),
        rtol=1e-12,
    )
    direction.set_value("maximize")
    _run(at)
    np.testing.assert_allclose(
        _quantiles(at)["median"],
        _predict(tiny_model, loss, max_epochs=tiny_model.native_length, direction="maximize").median(),
        rtol=1e-12,
    )


def test__app__values_outside_unit_interval_use_the_shared_default_range(app_argv, tiny_model):
    at = _run(AppTest.from_file(APP, default_timeout=TIMEOUT))
    at.radio(key="source").set_value("Built-in example")
    _run(at)
    at.selectbox(key="example").set_value("loss")
    _run(at)
    assert not _errors(at)
    from lcpfn.app.streamlit_app import example_files

    curve = read_csv(example_files()["loss"].read_bytes()).curves[0]
    # the app's default is predict's: a loss gets (0, None), and the sidebar says so
    fc = _predict(tiny_model, curve, max_epochs=tiny_model.native_length, direction="minimize")
    assert fc.bounds == (0.0, None)
    np.testing.assert_allclose(_quantiles(at)["median"], fc.median(), rtol=1e-12)
    assert any("low 0, high inferred" in c.value for c in at.sidebar.caption)
    # A known range that the values leave: a friendly error, not a crash.
    known = next(c for c in at.sidebar.checkbox if c.label == "The metric has a known range")
    known.check()
    _run(at)
    high = next(n for n in at.sidebar.number_input if n.label == "high")
    high.set_value(0.5)
    _run(at)
    (error,) = _errors(at)
    assert "outside bounds" in error or "outside the range" in error
    assert "value range in the sidebar" in error


def test__app__low_not_below_high_is_an_error(app_argv):
    at = _run(AppTest.from_file(APP, default_timeout=TIMEOUT))
    at.radio(key="source").set_value("Built-in example")
    _run(at)
    at.selectbox(key="example").set_value("loss")
    _run(at)
    next(c for c in at.sidebar.checkbox if c.label == "The metric has a known range").check()
    _run(at)
    low = next(n for n in at.sidebar.number_input if n.label == "low")
    low.set_value(5.0)
    _run(at)
    (error,) = _errors(at)
    assert error.startswith("the value range needs low < high, but got low=5, high=")


def test__app__wide_file_ranks_curves_by_chance_to_beat_the_best(app_argv, tiny_model):
    at = _upload(_start(), "runs.csv", WIDE_CSV)
    assert not _errors(at)
    ranking = next(d.value for d in at.dataframe if "rank" in d.value.columns)
    cs = read_csv(WIDE_CSV)
    best = float(cs.values().max())
    p = {}
    for name, curve in zip(cs.names, cs.curves):
        p[name] = _predict(tiny_model, curve, max_epochs=tiny_model.native_length).prob_above(best)
    want = sorted(p, key=lambda k: -p[k])
    assert list(ranking["curve"]) == want
    # batched (the app) and one curve at a time agree to the rounding of the truncation to the
    # bounds, which divides by the mass inside them (lcpfn.forecast.MIN_MASS: about 1e-7 at worst)
    np.testing.assert_allclose(ranking["P(beats best)"], [p[k] for k in want], rtol=1e-6)
    assert list(ranking["rank"]) == [1, 2, 3]
    fig = _figures(at)[0]
    for name in cs.names:  # every curve overlaid
        _trace(fig, f"{name}: median forecast")


def test__app__paste_values(app_argv, tiny_model):
    at = _start()
    at.radio(key="source").set_value("Paste values")
    _run(at)
    at.text_area(key="paste").input("0.30, 0.45 0.52\n0.56; 0.58")
    _run(at)
    assert not _errors(at)
    fc = _predict(tiny_model, [0.30, 0.45, 0.52, 0.56, 0.58], max_epochs=tiny_model.native_length)
    np.testing.assert_allclose(_quantiles(at)["median"], fc.median(), rtol=1e-12)


@pytest.mark.parametrize("name", ["accuracy", "loss", "runs"])
def test__app__every_example_forecasts(app_argv, name):
    at = _start()
    at.radio(key="source").set_value("Built-in example")
    _run(at)
    at.selectbox(key="example").set_value(name)
    _run(at)
    assert not _errors(at)
    assert len(at.get("plotly_chart")) == 2


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"epoch,acc\n1,0.5\n2,0.6\n4,0.7\n", "epoch 3 is missing"),  # malformed
        (b"acc\n0.5\n0.6\nseventy\n", "'seventy', which is not a number"),  # non-numeric cell
        (b"a,b\n0.5,\n0.6,\n", "curve 'b' has 0 values"),  # a curve with no points
        (b"acc\n0.5\nNaN\n0.7\n", "is 'NaN'; every value must be a finite number"),
        (b"", "is empty"),
        (b"0.5\n" * (curve_io.MAX_BYTES // 4 + 1), "at most 5 MB"),  # huge
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not a text file"),
        (b"a,b\n1,2\n3,4,5\n", "has 3 cells but the header has only 2"),
        (b"acc\n0.5\n1e308\n0.7\n", "line 3, column 'acc' is '1e308'; values up to 1e+150 in magnitude"),
        (b"acc\n0.5\n-1e308\n0.7\n", "line 3, column 'acc' is '-1e308'; values up to 1e+150 in magnitude"),
        (b"a,b\n0.5,1e-320\n0.6,-1e308\n1e308,0.7\n", "line 4, column 'a' is '1e308'; values up to"),
        (",".join(["acc"] * 2_000).encode() + b"\n" + b"0.5\n" * 1_000, "the header row (line 1) has 2000 columns"),
    ],
    ids=["malformed", "non-numeric", "too-few", "nan", "empty", "huge", "binary", "ragged-row", "1e308", "-1e308",
         "mix-of-extremes", "2000-header-cells"],
)
def test__app__bad_upload_is_a_friendly_error_and_the_session_survives(app_argv, data, message):
    at = _upload(_start(), "bad.csv", data)
    (error,) = _errors(at)
    assert error.startswith("'bad.csv'") and message in error
    assert not at.get("plotly_chart")
    # The same session recovers with a good file.
    at.file_uploader(key="upload").clear()
    _upload(at, "good.csv", ACC_CSV)
    assert not _errors(at)
    assert len(at.get("plotly_chart")) == 2


def test__app__pasted_huge_value_is_a_friendly_error_naming_it(app_argv):
    at = _start()
    at.radio(key="source").set_value("Paste values")
    _run(at)
    at.text_area(key="paste").input("0.5, 0.6, 1e308")
    _run(at)
    (error,) = _errors(at)
    assert error.startswith("value 3 of the pasted values is '1e308'; values up to 1e+150 in magnitude")
    assert not at.get("plotly_chart")


def _all_finite(at: AppTest) -> None:
    """Every number on the page is finite: tables, metrics and both charts."""
    for d in at.dataframe:
        numbers = d.value.select_dtypes("number").to_numpy(dtype=float)
        assert np.isfinite(numbers).all(), d.value
    for m in at.metric:
        assert "nan" not in m.value and "inf" not in m.value, (m.label, m.value)
    for fig in _figures(at):
        for trace in fig["data"]:
            for axis in ("x", "y"):
                if isinstance(trace.get(axis), (np.ndarray, list)):
                    assert np.isfinite(np.asarray(trace[axis], dtype=float)).all(), (trace.get("name"), axis)


@pytest.mark.parametrize(
    ("data", "direction"),
    [
        (b"acc\n1e-320\n2e-320\n3e-320\n", "maximize"),  # subnormal values (a model's own [0, 1] scale)
        (b"loss\n-1e-320\n-2e-320\n-5e-324\n", "minimize"),
        (b"a\n1e150\n-1e150\n1e-320\n0.5\n", "maximize"),  # a mix at the limits
        (b"a\n1e150\n-1e150\n1e-320\n0.5\n", "minimize"),
        (b"a,b\n1e150,0.5\n1e149,-1e150\n", "maximize"),
    ],
    ids=["1e-320", "negative-subnormal", "mix-maximize", "mix-minimize", "two-curves"],
)
def test__app__extreme_finite_values_forecast_finite_numbers(app_argv, tiny_model, data, direction):
    at = _upload(_start(), "v.csv", data)
    next(r for r in at.sidebar.radio if r.label == "Direction").set_value(direction)
    _run(at)
    assert not _errors(at)
    assert len(at.get("plotly_chart")) == 2
    _all_finite(at)
    cs = read_csv(data)
    if cs.n_curves == 1:
        fc = _predict(tiny_model, cs.curves[0], max_epochs=tiny_model.native_length, direction=direction)
        np.testing.assert_allclose(_quantiles(at)["median"], fc.median(), rtol=1e-12)
    # the known range the sidebar offers (it contains every value) forecasts too
    next(c for c in at.sidebar.checkbox if c.label == "The metric has a known range").check()
    _run(at)
    assert not _errors(at)
    _all_finite(at)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("Target value (optional)", 1e308, "the target value is 1e+308; values up to 1e+150 in magnitude"),
        ("Target value (optional)", -1e308, "the target value is -1e+308; values up to 1e+150 in magnitude"),
        ("high", 1e308, "the high end of the value range is 1e+308; values up to 1e+150"),
        ("low", -1e308, "the low end of the value range is -1e+308; values up to 1e+150"),
        ("high", 1e-320, "the value range [0, 9.99989e-321] is 9.99989e-321 wide; it must be at least 1e-150"),
    ],
    ids=["target-1e308", "target--1e308", "high-1e308", "low--1e308", "range-1e-320-wide"],
)
def test__app__extreme_target_or_range_is_a_friendly_error_naming_it(app_argv, field, value, message):
    at = _upload(_start(), "run.csv", ACC_CSV)
    if field != "Target value (optional)":
        next(c for c in at.sidebar.checkbox if c.label == "The metric has a known range").check()
        _run(at)
        next(n for n in at.sidebar.number_input if n.label == "low").set_value(0.0)
    next(n for n in at.sidebar.number_input if n.label == field).set_value(value)
    _run(at)
    (error,) = _errors(at)
    assert error.startswith(message)
    assert not at.get("plotly_chart")


def test__app__tiny_target_is_fine(app_argv, tiny_model):
    at = _upload(_start(), "run.csv", ACC_CSV)
    next(n for n in at.sidebar.number_input if n.label == "Target value (optional)").set_value(1e-320)
    _run(at)
    assert not _errors(at)
    fc = _predict(tiny_model, ACC, max_epochs=tiny_model.native_length, direction="maximize")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics[f"P(final beats target {1e-320:.4g})"] == f"{fc.prob_above(1e-320):.1%}"


class _FakeForecast:
    """A forecast of curves 'a' and 'b' (2 epochs seen, epochs 3..5 forecast) with given quantiles."""

    epochs = np.arange(3, 6)
    observed = np.array([[0.1, 0.2], [0.3, 0.4]])
    lengths = np.array([2, 2])

    def __init__(self, quantile) -> None:
        self.quantile = quantile

    def mean(self):
        return np.full((2, 3), 0.5)

    def prob_improve(self, value):
        return np.array([0.5, 0.5])

    def log_prob_at(self, grid):
        return np.zeros((2, len(grid)))


def _nan_for_b(q):
    out = np.full((2, 3), q)
    out[1, 1:] = np.nan
    return out


def _huge_spread(q):
    return np.full((2, 3), 1e308 if q > 0.5 else -1e308)


@pytest.mark.parametrize(
    ("quantile", "message"),
    [
        (_nan_for_b, "the forecast of curve 'b' is not finite (its 5% quantile)"),
        (_huge_spread, "the forecasts span [-1e+308, 1e+308], too wide to draw"),
    ],
    ids=["nan", "overflowing-spread"],
)
def test__summarize__a_forecast_that_cannot_be_drawn_is_an_input_error(quantile, message):
    from lcpfn.app.streamlit_app import summarize
    from lcpfn.errors import InputError

    with pytest.raises(InputError, match=re.escape(message)):
        summarize(_FakeForecast(quantile), ["a", "b"], best=0.4, target=None)
    # NaN at the epochs a curve observed (curves of different lengths) is not an error
    fc = _FakeForecast(lambda q: np.where([[False] * 3, [True, False, False]], np.nan, q))
    fc.lengths = np.array([2, 3])
    assert [len(f.epochs) for f in summarize(fc, ["a", "b"], best=0.4, target=None)] == [3, 2]


def test__check_range__names_the_bad_end():
    from lcpfn.app.streamlit_app import check_range
    from lcpfn.errors import InputError

    assert check_range(-1e150, 1e150) == (-1e150, 1e150)
    with pytest.raises(InputError, match="the low end of the value range is -inf"):
        check_range(float("-inf"), 1.0)
    with pytest.raises(InputError, match="the high end of the value range is nan"):
        check_range(0.0, float("nan"))


def test__app__curve_as_long_as_the_horizon_is_a_friendly_error(app_argv, tiny_model):
    n = tiny_model.native_length
    data = "\n".join(f"{0.5 + 0.3 * k / n:.4f}" for k in range(n)).encode()
    at = _upload(_start(), "long.csv", data)
    assert not _errors(at)  # the horizon defaults past the curve
    assert _quantiles(at)["epoch"].iloc[-1] == 2 * n


def test__app__bad_checkpoint_directory_is_a_friendly_error(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "argv", ["streamlit_app.py"])
    at = _start()
    at.sidebar.radio(key="model").set_value("checkpoint directory")
    _run(at)
    at.sidebar.text_input(key="model_dir").input(str(tmp_path / "no-such-checkpoint"))
    _run(at)
    (error,) = _errors(at)
    assert "no-such-checkpoint" in error


def test__app__checkpoint_directory_can_be_chosen_in_the_sidebar(monkeypatch, tiny_model_dir):
    monkeypatch.setattr(sys, "argv", ["streamlit_app.py", "--model", "reference"])
    at = _start()
    assert at.sidebar.radio(key="model").value == "reference"
    at.sidebar.radio(key="model").set_value("checkpoint directory")
    _run(at)
    at.sidebar.text_input(key="model_dir").input(str(tiny_model_dir))
    _run(at)
    _upload(at, "run.csv", ACC_CSV)
    assert not _errors(at)
    assert len(at.get("plotly_chart")) == 2


def test__app__model_is_loaded_once_per_server(app_argv, monkeypatch):
    import streamlit as st

    from lcpfn import LCPFN

    calls = []
    real = LCPFN.from_pretrained.__func__

    def counting(cls, *args, **kwargs):
        calls.append(args)
        return real(cls, *args, **kwargs)

    monkeypatch.setattr(LCPFN, "from_pretrained", classmethod(counting))
    st.cache_resource.clear()
    for _ in range(2):  # two sessions, each with an upload and a rerun
        at = _upload(_start(), "run.csv", ACC_CSV)
        _run(at)
    assert len(calls) == 1


# --- compare with MCMC -----------------------------------------------------------------------------------
class _FakeMCMC:
    """Stands in for lcpfn.mcmc.MCMCPredictor (same predict signature): the tiny PFN, and a call log."""

    calls: list[tuple[int, int]] = []
    model_dir: str = ""

    def __init__(self, **kwargs) -> None:
        from lcpfn import LCPFN

        self.model = LCPFN.from_pretrained(self.model_dir)

    def predict(self, curves, **kwargs):
        curves = np.asarray(curves)
        type(self).calls.append(curves.shape)
        return _predict(self.model, curves, **kwargs)


def test__app__compare_with_mcmc_overlays_its_bands(app_argv, monkeypatch, tiny_model):
    _FakeMCMC.calls = []
    _FakeMCMC.model_dir = str(app_argv)
    monkeypatch.setitem(sys.modules, "lcpfn.mcmc", types.SimpleNamespace(MCMCPredictor=_FakeMCMC))
    at = _upload(_start(), "runs.csv", WIDE_CSV)
    assert "MCMC 90% band" not in json.dumps([t.get("name") for t in _figures(at)[0]["data"]])
    at.button(key="mcmc_run").click()
    _run(at)
    assert not _errors(at)
    assert sorted(_FakeMCMC.calls) == [(1, 10), (1, 15), (1, 15)]  # one call per curve, for progress
    fig = _figures(at)[0]
    cs = read_csv(WIDE_CSV)
    for name, curve in zip(cs.names, cs.curves):
        band = _trace(fig, f"{name}: MCMC 90% band")
        fc = _predict(tiny_model, curve, max_epochs=tiny_model.native_length)
        np.testing.assert_allclose(band["y"], fc.quantile(0.95), rtol=1e-12)
    assert any("MCMC took" in m.value for m in at.markdown)
    # The overlay stays through reruns until the data or settings change.
    _run(at)
    _trace(_figures(at)[0], "a: MCMC median")
    epochs = next(n for n in at.sidebar.number_input if n.label == "Total epochs to forecast to")
    epochs.set_value(50)
    _run(at)
    assert "MCMC" not in json.dumps([t.get("name") for t in _figures(at)[0]["data"]])
    assert any("changed since MCMC ran" in c.value for c in at.caption)


def test__app__mcmc_unavailable_is_a_friendly_error(app_argv, monkeypatch):
    monkeypatch.setitem(sys.modules, "lcpfn.mcmc", None)  # import raises ImportError
    at = _upload(_start(), "run.csv", ACC_CSV)
    at.button(key="mcmc_run").click()
    _run(at)
    (error,) = _errors(at)
    assert error.startswith("The MCMC baseline is not available")
    assert len(at.get("plotly_chart")) == 2  # the PFN forecast is still there


def test__app__mcmc_failure_is_a_friendly_error_and_keeps_the_forecast(app_argv, monkeypatch):
    class Failing:
        def __init__(self, **kwargs) -> None:
            pass

        def predict(self, curves, **kwargs):
            raise RuntimeError("sampler diverged")

    monkeypatch.setitem(sys.modules, "lcpfn.mcmc", types.SimpleNamespace(MCMCPredictor=Failing))
    at = _upload(_start(), "run.csv", ACC_CSV)
    at.button(key="mcmc_run").click()
    _run(at)
    (error,) = _errors(at)
    assert error == "The MCMC baseline failed: RuntimeError: sampler diverged"
    assert len(at.get("plotly_chart")) == 2
