"""The Streamlit app: CSV/paste parsing (pure functions) and the app itself, driven by AppTest."""

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
from lcpfn.io import CurveSet, guess_bounds, guess_direction, parse_values, read_csv  # noqa: E402
from lcpfn.errors import InputError  # noqa: E402

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


# --- curve_io: the three layouts ------------------------------------------------------------------
def test__read_csv__epoch_value_with_header():
    cs = read_csv(b"epoch,acc\n1,0.5\n2,0.6\n3,0.65\n")
    assert cs.names == ("acc",)
    np.testing.assert_array_equal(cs.curves[0], [0.5, 0.6, 0.65])


def test__read_csv__epoch_value_without_header_and_with_spaces():
    cs = read_csv(b"  1 , 0.5 \n2,0.6\n\n3,  0.65\n")
    assert cs.names == ("curve",)
    np.testing.assert_array_equal(cs.curves[0], [0.5, 0.6, 0.65])


def test__read_csv__unsorted_epochs_are_sorted():
    cs = read_csv(b"epoch,acc\n2,0.6\n1,0.5\n3,0.65\n")
    np.testing.assert_array_equal(cs.curves[0], [0.5, 0.6, 0.65])


@pytest.mark.parametrize(
    "data",
    [b"0.5\n0.6\n0.7\n", b"acc\n0.5\n0.6\n0.7\n", b"0.5\r\n0.6\r\n0.7\r\n", "\ufeffacc\n0.5\n0.6\n0.7".encode()],
    ids=["no-header", "header", "crlf", "bom"],
)
def test__read_csv__single_column(data):
    cs = read_csv(data)
    assert cs.n_curves == 1
    np.testing.assert_array_equal(cs.curves[0], [0.5, 0.6, 0.7])


def test__read_csv__single_row_is_one_curve():
    cs = read_csv(b"0.5, 0.6, 0.7\n")
    assert cs.n_curves == 1
    np.testing.assert_array_equal(cs.curves[0], [0.5, 0.6, 0.7])


@pytest.mark.parametrize("sep", [",", ";", "\t", "  "], ids=["comma", "semicolon", "tab", "spaces"])
def test__read_csv__wide_file_any_separator(sep):
    rows = [["a", "b", "c"], ["0.1", "0.2", "0.3"], ["0.2", "0.3", "0.4"], ["0.3", "0.4", "0.5"]]
    cs = read_csv("\n".join(sep.join(r) for r in rows))
    assert cs.names == ("a", "b", "c")
    np.testing.assert_array_equal(np.stack(cs.curves), [[0.1, 0.2, 0.3], [0.2, 0.3, 0.4], [0.3, 0.4, 0.5]])


def test__read_csv__wide_file_with_epoch_column_and_ragged_curves():
    cs = read_csv(WIDE_CSV)
    assert cs.names == ("a", "b", "c")
    assert cs.lengths == (15, 15, 10)


def test__read_csv__wide_file_without_header_gets_numbered_names():
    cs = read_csv(b"0.1 0.2\n0.2 0.3\n0.3 0.35\n")
    assert cs.names == ("curve 1", "curve 2")


def test__read_csv__epochs_from_zero_are_shifted_with_a_note():
    cs = read_csv(b"epoch,acc\n0,0.5\n1,0.6\n2,0.7\n")
    np.testing.assert_array_equal(cs.curves[0], [0.5, 0.6, 0.7])
    assert "start at 0" in cs.notes[0]


def test__read_csv__evenly_spaced_steps_are_read_as_evaluations():
    cs = read_csv(b"step,loss\n100,2.0\n200,1.5\n300,1.2\n")
    np.testing.assert_array_equal(cs.curves[0], [2.0, 1.5, 1.2])
    assert "steps of 100" in cs.notes[0]


def test__read_csv__trailing_separator_is_ignored():
    cs = read_csv(b"1,0.5,\n2,0.6,\n")
    np.testing.assert_array_equal(cs.curves[0], [0.5, 0.6])


def test__read_csv__duplicate_header_names_are_made_unique():
    assert read_csv(b"acc,acc\n0.1,0.2\n0.2,0.3\n").names == ("acc", "acc (2)")


# --- curve_io: every error names the problem --------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "is empty"),
        (b"  \n \n", "is empty"),
        (b"# only a comment\n", "is empty"),
        (b"a,b\n", "header row but no values"),
        (b"acc\n0.5\nabc\n0.7\n", "line 3, column 'acc' is 'abc', which is not a number"),
        (b"acc\n0.5\nnan\n0.7\n", "line 3, column 'acc' is 'nan'; every value must be a finite number"),
        (b"acc\n0.5\ninf\n0.7\n", "is 'inf'; every value must be a finite number"),
        (b"acc\n0.5\nNA\n0.7\n", "is 'NA'; every value must be a finite number"),
        (b"acc\n0.5\n", "curve 'acc' has 1 value; at least 2"),
        (b"epoch,acc\n1,0.5\n2,0.6\n4,0.7\n", "epoch 3 is missing"),
        (b"epoch,acc\n1,0.5\n1,0.6\n2,0.7\n", "epoch 1 appears more than once"),
        (b"epoch,acc\n5,0.5\n6,0.6\n", "start at 5"),
        (b"epoch,acc\n1.5,0.5\n2,0.6\n", "whole numbers"),
        (b"epoch,acc\n1,0.5\n,0.6\n", "every row needs its epoch"),
        (b"epoch\n1\n2\n", "no values"),
        (b"a,b\n1,2\n,3\n4,5\n", "line 3, column 'a' is empty but later lines have values"),
        (b"a,b\n1,2\n3,4,5\n", "line 3 has 3 cells but the header has only 2"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not a text file"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test__read_csv__bad_input_raises_input_error_naming_it(data, message):
    with pytest.raises(InputError, match=re.escape(message)):
        read_csv(data, source="run.csv")


def test__read_csv__error_names_the_source():
    with pytest.raises(InputError, match="^'run.csv': line 2"):
        read_csv(b"acc\nx\n0.5\n", source="'run.csv'")


def test__read_csv__errors_give_the_line_of_the_file_counting_blank_and_comment_lines():
    with pytest.raises(InputError, match="line 5, column 'acc' is 'x'"):
        read_csv(b"# run 7\nacc\n0.5\n\nx\n")


def test__read_csv__huge_file_is_refused_before_parsing():
    data = b"0.5\n" * (curve_io.MAX_BYTES // 4 + 1)
    with pytest.raises(InputError, match=r"is 5\.0 MB; at most 5 MB"):
        read_csv(data)


def test__read_csv__too_many_curves():
    n = curve_io.MAX_CURVES + 1
    data = "\n".join(",".join(["0.5"] * n) for _ in range(3))
    with pytest.raises(InputError, match=f"has {n} curves; at most {curve_io.MAX_CURVES}"):
        read_csv(data)


def test__read_csv__too_long_curve(monkeypatch):
    monkeypatch.setattr(curve_io, "MAX_POINTS", 5)
    with pytest.raises(InputError, match="has 6 values; at most 5"):
        read_csv(b"0.1\n0.2\n0.3\n0.4\n0.5\n0.6\n")


def test__parse_values__commas_spaces_semicolons_and_newlines():
    cs = parse_values(" 0.1, 0.2 0.3;0.4\n0.5 ")
    np.testing.assert_array_equal(cs.curves[0], [0.1, 0.2, 0.3, 0.4, 0.5])


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "are empty"), ("  \n ", "are empty"), ("0.1 x 0.3", "value 2 of the pasted values is 'x'"),
     ("0.1 nan", "value 2 of the pasted values is 'nan'"), ("0.3", "has 1 value")],
)
def test__parse_values__bad_input_raises_input_error(text, message):
    with pytest.raises(InputError, match=message):
        parse_values(text)


# --- curve_io: guesses ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("names", "curve", "want"),
    [
        (("val_loss",), [0.5, 0.6, 0.7], "minimize"),  # the name wins over the trend
        (("accuracy",), [0.7, 0.6, 0.5], "maximize"),
        (("curve",), [2.0, 1.5, 1.2, 1.1], "minimize"),
        (("curve",), [0.2, 0.5, 0.6, 0.62], "maximize"),
        (("curve",), [0.5, 0.5, 0.5], "maximize"),
    ],
)
def test__guess_direction__names_then_trend(names, curve, want):
    cs = CurveSet(names=names, curves=(np.asarray(curve, dtype=float),))
    assert guess_direction(cs)[0] == want


def test__guess_direction__majority_of_curves():
    cs = CurveSet(names=("a", "b", "c"), curves=tuple(np.asarray(c, float) for c in ([3, 2, 1], [3, 2, 1], [1, 2, 3])))
    assert guess_direction(cs) == ("minimize", "the values mostly decrease")


@pytest.mark.parametrize(
    ("curve", "direction", "want"),
    [
        ([0.2, 0.5, 0.9], "maximize", None),
        ([20.0, 50.0, 90.0], "maximize", (0.0, 100.0)),
        ([2.3, 1.5, 1.2], "minimize", (0.0, 2.6)),  # 2.3 + 0.25 * 1.1 = 2.575 -> 2.6
        ([-5.0, -3.0, -1.0], "maximize", (-6.0, 0.0)),  # low -5 - 1 = -6; high -1 + 1 = 0
    ],
)
def test__guess_bounds(curve, direction, want):
    cs = CurveSet(names=("c",), curves=(np.asarray(curve),))
    assert guess_bounds(cs, direction) == want


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


def test__app__values_outside_unit_interval_use_the_guessed_range(app_argv, tiny_model):
    at = _run(AppTest.from_file(APP, default_timeout=TIMEOUT))
    at.radio(key="source").set_value("Built-in example")
    _run(at)
    at.selectbox(key="example").set_value("loss")
    _run(at)
    assert not _errors(at)
    from lcpfn.app.streamlit_app import example_files

    curve = read_csv(example_files()["loss"].read_bytes()).curves[0]
    bounds = guess_bounds(CurveSet(names=("val_loss",), curves=(curve,)), "minimize")
    assert bounds is not None
    fc = _predict(tiny_model, curve, max_epochs=tiny_model.native_length, direction="minimize", bounds=bounds)
    np.testing.assert_allclose(_quantiles(at)["median"], fc.median(), rtol=1e-12)
    # Without the range the values cannot be forecast: a friendly error, not a crash.
    scaled = next(c for c in at.sidebar.checkbox if c.label == "Scale values from a range")
    scaled.uncheck()
    _run(at)
    (error,) = _errors(at)
    assert "outside the range" in error and "value range in the sidebar" in error


def test__app__low_not_below_high_is_an_error(app_argv):
    at = _run(AppTest.from_file(APP, default_timeout=TIMEOUT))
    at.radio(key="source").set_value("Built-in example")
    _run(at)
    at.selectbox(key="example").set_value("loss")
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
    np.testing.assert_allclose(ranking["P(beats best)"], [p[k] for k in want], rtol=1e-9)
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
        (b"acc\n0.5\n", "has 1 value; at least 2"),  # too few points
        (b"acc\n0.5\nNaN\n0.7\n", "is 'NaN'; every value must be a finite number"),
        (b"", "is empty"),
        (b"0.5\n" * (curve_io.MAX_BYTES // 4 + 1), "at most 5 MB"),  # huge
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not a text file"),
        (b"a,b\n1,2\n3,4,5\n", "has 3 cells but the header has only 2"),
    ],
    ids=["malformed", "non-numeric", "too-few", "nan", "empty", "huge", "binary", "ragged-row"],
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
