"""Streamlit app: upload a learning curve, see where it is heading and how sure the model is.

Run with ``lcpfn app`` or ``streamlit run app/streamlit_app.py -- [--model NAME_OR_DIR]
[--example NAME]``. The model is loaded once per server (``st.cache_resource``); a forecast is
one ``LCPFN.predict`` call, the same call a user of the library makes.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.resources
import logging
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from lcpfn import limits
from lcpfn.errors import InputError, LCPFNError, MissingDependencyError
from lcpfn.io import MAX_ABS_VALUE, MAX_BYTES, CurveSet, guess_direction, parse_values, read_csv
from lcpfn.normalization import Direction, default_bounds, describe_bounds

logger = logging.getLogger(__name__)

# (No bare string literals at module level: Streamlit's "magic" would write them on the page.)
# Per-epoch quantiles shown in the table and download; 5-95 % and 25-75 % are the bands.
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
MODEL_CHOICES = ("default", "reference", "checkpoint directory")
SOURCES = ("Upload a CSV", "Paste values", "Built-in example")
DENSITY_POINTS = 200
# Longest trace drawn; longer forecasts are thinned for the chart (tables keep every epoch).
MAX_PLOT_POINTS = 400
# Curves drawn by default when a file holds more (the best-ranked ones).
MAX_SHOWN = 8
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")
# Narrowest known value range [low, high], predict's own (lcpfn.limits): 1 / (high - low) scales
# the values and the density, so with |low|, |high| <= MAX_ABS_VALUE every scale stays finite.
MIN_RANGE_WIDTH = limits.MIN_SPAN


@dataclass(frozen=True)
class CurveForecast:
    """What the app shows of one curve's forecast (caller units).

    ``epochs`` ``(H,)``; ``quantiles[q]`` and ``mean`` ``(H,)``; ``grid``/``density`` ``(G,)``
    the predictive density of the value at the last epoch; probabilities are for that epoch.
    """

    name: str
    observed: np.ndarray
    epochs: np.ndarray
    quantiles: dict[float, np.ndarray]
    mean: np.ndarray
    grid: np.ndarray | None
    density: np.ndarray | None
    p_best: float
    p_target: float | None

    @property
    def final_median(self) -> float:
        return float(self.quantiles[0.5][-1])


@dataclass(frozen=True)
class Settings:
    direction: Direction
    max_epochs: int
    bounds: tuple[float, float] | Literal["auto"]
    target: float | None


# --- computation (no Streamlit) ---------------------------------------------------------------
def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """The app's own arguments, given after ``--`` to ``streamlit run``; unknown ones are ignored."""
    parser = argparse.ArgumentParser(prog="lcpfn app", add_help=False, allow_abbrev=False)
    parser.add_argument("--model", default="default", help="default, reference or a checkpoint directory")
    parser.add_argument("--example", default=None, help="a built-in example to open with")
    args, _ = parser.parse_known_args(list(argv))
    return args


def example_files() -> dict[str, Any]:
    """Built-in example CSVs (package data of ``lcpfn.app``), by file stem."""
    root = importlib.resources.files("lcpfn.app").joinpath("examples")
    files = sorted((p for p in root.iterdir() if p.name.endswith(".csv")), key=lambda p: p.name)
    return {p.name.removesuffix(".csv"): p for p in files}


def fingerprint(curve_set: CurveSet) -> str:
    """A short stable hash of the curves, to key widgets whose defaults depend on the data."""
    h = hashlib.sha1()
    for name, c in zip(curve_set.names, curve_set.curves):
        h.update(name.encode("utf-8", "surrogatepass"))
        h.update(np.ascontiguousarray(c).tobytes())
    return h.hexdigest()[:12]


def check_value(label: str, value: float) -> float:
    """``value`` (a number the user typed) as a float, or :class:`InputError` naming it.

    The same limit as the values read from a file (``lcpfn.io.MAX_ABS_VALUE``): within it, every
    difference, scale and density the app and the forecast compute stays finite.
    """
    v = float(value)
    if not np.isfinite(v) or abs(v) > MAX_ABS_VALUE:
        raise InputError(
            f"the {label} is {v:g}; values up to {MAX_ABS_VALUE:g} in magnitude are accepted (larger ones "
            "would overflow the forecast's arithmetic)"
        )
    return v


def check_range(low: float, high: float) -> tuple[float, float]:
    """The known value range ``(low, high)``, or :class:`InputError` naming what is wrong with it."""
    low, high = check_value("low end of the value range", low), check_value("high end of the value range", high)
    if not low < high:
        raise InputError(f"the value range needs low < high, but got low={low:g}, high={high:g}")
    if high - low < MIN_RANGE_WIDTH:
        raise InputError(
            f"the value range [{low:g}, {high:g}] is {high - low:g} wide; it must be at least "
            f"{MIN_RANGE_WIDTH:g} wide (the values are divided by its width)"
        )
    return low, high


def best_so_far(curve_set: CurveSet, direction: Direction) -> float:
    """The best value observed in any curve: the bar each curve's final value is ranked against."""
    y = curve_set.values()
    return float(y.max() if direction == "maximize" else y.min())


def forecast_curves(
    predictor: Any,
    curve_set: CurveSet,
    settings: Settings,
    *,
    indices: Sequence[int] | None = None,
    density: bool = True,
    batched: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> list[CurveForecast]:
    """Forecast the curves ``indices`` (default all) with ``predictor.predict``.

    ``batched``: all curves go in one call, whatever their lengths (else one call per curve,
    for a slow predictor whose progress should show); ``progress(done, total)`` is called after
    each call.
    """
    indices = list(range(curve_set.n_curves)) if indices is None else list(indices)
    best = best_so_far(curve_set, settings.direction)
    groups = [indices] if batched else [[i] for i in indices]
    out: dict[int, CurveForecast] = {}
    done = 0
    for members in groups:
        fc = predictor.predict(
            [curve_set.curves[i] for i in members],
            max_epochs=settings.max_epochs, direction=settings.direction, bounds=settings.bounds,
        )
        names = [curve_set.names[i] for i in members]
        out.update(zip(members, summarize(fc, names, best=best, target=settings.target, density=density)))
        done += len(members)
        if progress is not None:
            progress(done, len(indices))
    return [out[i] for i in indices]


def summarize(
    fc: Any, names: Sequence[str], *, best: float, target: float | None, density: bool = True
) -> list[CurveForecast]:
    """Per-curve summaries of a :class:`lcpfn.Forecast` of ``n`` curves (lengths may differ)."""
    qs = {q: np.atleast_2d(fc.quantile(q)) for q in QUANTILES}  # each (n, H)
    mean = np.atleast_2d(fc.mean())
    p_best = np.atleast_1d(fc.prob_improve(best))
    p_target = np.atleast_1d(fc.prob_improve(target)) if target is not None else None
    observed = np.atleast_2d(fc.observed)
    lengths = np.atleast_1d(fc.lengths)
    future = [np.asarray(fc.epochs) > t for t in lengths]  # each curve's own future epochs
    # A broken or overflowing forecast is refused here, before any arithmetic or drawing with it.
    # (Forecasts are NaN at the epochs a curve observed, when curves differ in length.)
    for what, v in {**{f"{q:.0%} quantile": v for q, v in qs.items()}, "mean": mean}.items():
        _check_finite(names, what, [v[i][future[i]] for i in range(len(names))])
    _check_finite(names, "P(beats best)", p_best)
    if p_target is not None:
        _check_finite(names, "P(beats target)", p_target)
    grid = dens = None
    if density:
        lo = np.atleast_2d(fc.quantile(0.002))[:, -1]  # the last epoch: every curve's future
        hi = np.atleast_2d(fc.quantile(0.998))[:, -1]
        _check_finite(names, "0.2% quantile", lo)
        _check_finite(names, "99.8% quantile", hi)
        low, high = float(lo.min()), float(hi.max())
        pad = 0.05 * max(high - low, 1e-9)  # Python floats: an overflow is inf, checked next
        if not np.isfinite((high + pad) - (low - pad)):
            raise InputError(f"the forecasts span [{low:g}, {high:g}], too wide to draw; rescale the values")
        grid = np.linspace(low - pad, high + pad, DENSITY_POINTS)
        with np.errstate(over="ignore"):
            dens = np.exp(np.atleast_2d(fc.log_prob_at(grid)))  # (n, G)
        _check_finite(names, "density", dens)
    return [
        CurveForecast(
            name=name,
            observed=observed[i, : lengths[i]],
            epochs=np.asarray(fc.epochs)[future[i]],
            quantiles={q: v[i][future[i]] for q, v in qs.items()},
            mean=mean[i][future[i]],
            grid=grid,
            density=None if dens is None else dens[i],
            p_best=float(p_best[i]),
            p_target=None if p_target is None else float(p_target[i]),
        )
        for i, name in enumerate(names)
    ]


def _check_finite(names: Sequence[str], what: str, per_curve: Sequence[Any] | np.ndarray) -> None:
    """:class:`InputError` naming the first curve whose ``what`` (``per_curve[i]``: curve ``i``'s) is not finite."""
    for name, v in zip(names, per_curve):
        if not np.isfinite(v).all():
            raise InputError(
                f"the forecast of curve {name!r} is not finite (its {what}): the values or the range are too "
                "extreme to forecast; rescale the values"
            )


def quantile_table(forecasts: Sequence[CurveForecast]) -> pd.DataFrame:
    """Per-epoch quantiles, one row per (curve, future epoch)."""
    frames = []
    for f in forecasts:
        cols: dict[str, Any] = {"curve": f.name, "epoch": f.epochs}
        for q in QUANTILES:
            cols["median" if q == 0.5 else f"q{round(q * 100):02d}"] = f.quantiles[q]
        cols["mean"] = f.mean
        frames.append(pd.DataFrame(cols))
    return pd.concat(frames, ignore_index=True)


def ranking_table(forecasts: Sequence[CurveForecast], best: float, target: float | None) -> pd.DataFrame:
    """Curves ranked by their chance that the value at the last epoch beats ``best``."""
    rows = []
    for f in forecasts:
        row = {
            "curve": f.name,
            "epochs seen": len(f.observed),
            "last value": float(f.observed[-1]),
            f"median @ {int(f.epochs[-1])}": f.final_median,
            "90% low": float(f.quantiles[0.05][-1]),
            "90% high": float(f.quantiles[0.95][-1]),
            "P(beats best)": f.p_best,
        }
        if target is not None:
            row["P(beats target)"] = f.p_target
        rows.append(row)
    df = pd.DataFrame(rows).sort_values("P(beats best)", ascending=False, kind="stable")
    df.insert(0, "rank", np.arange(1, len(df) + 1))
    return df.reset_index(drop=True)


def _thin(n: int) -> np.ndarray:
    """Indices of at most about ``MAX_PLOT_POINTS`` evenly spaced points of ``n``, the last included."""
    step = max(1, -(-n // MAX_PLOT_POINTS))
    return np.unique(np.r_[np.arange(0, n, step), n - 1])


def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[k : k + 2], 16) for k in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def forecast_figure(
    forecasts: Sequence[CurveForecast],
    *,
    target: float | None,
    mcmc: Sequence[CurveForecast] = (),
    value_label: str = "value",
) -> go.Figure:
    """Observed points, median forecast, 50 % and 90 % bands per curve; MCMC bands dashed."""
    fig = go.Figure()
    fade = 1.0 if len(forecasts) == 1 else 0.5  # overlapping bands stay readable
    for k, f in enumerate(forecasts):
        color = COLORS[k % len(COLORS)]
        obs_x = np.arange(1, len(f.observed) + 1)
        s = _thin(len(f.epochs))
        # Start the forecast at the last observation so the lines join up.
        x = np.concatenate([[obs_x[-1]], f.epochs[s]])
        band = {q: np.concatenate([[f.observed[-1]], f.quantiles[q][s]]) for q in QUANTILES}
        group = dict(legendgroup=f.name)
        prefix = f"{f.name}: " if len(forecasts) > 1 else ""
        for lo, hi, alpha, label in ((0.05, 0.95, 0.15, "90%"), (0.25, 0.75, 0.3, "50%")):
            fig.add_trace(go.Scatter(x=x, y=band[hi], mode="lines", line=dict(width=0), showlegend=False,
                                     hoverinfo="skip", **group))
            fig.add_trace(go.Scatter(x=x, y=band[lo], mode="lines", line=dict(width=0), fill="tonexty",
                                     fillcolor=_rgba(color, alpha * fade), name=f"{prefix}{label} band",
                                     hoverinfo="skip", **group))
        fig.add_trace(go.Scatter(x=x, y=band[0.5], mode="lines", line=dict(color=color, width=2),
                                 name=f"{prefix}median forecast", **group))
        so = _thin(len(obs_x))
        fig.add_trace(go.Scatter(x=obs_x[so], y=f.observed[so], mode="markers+lines",
                                 marker=dict(color=color, size=5), line=dict(color=color, width=1),
                                 name=f"{prefix}observed", **group))
    for m in mcmc:
        color = "#333333"
        prefix = f"{m.name}: " if len(mcmc) > 1 else ""
        s = _thin(len(m.epochs))
        dash = dict(color=color, width=1.5, dash="dash")
        fig.add_trace(go.Scatter(x=m.epochs[s], y=m.quantiles[0.5][s], mode="lines",
                                 line=dict(color=color, width=2, dash="dot"), name=f"{prefix}MCMC median"))
        fig.add_trace(go.Scatter(x=m.epochs[s], y=m.quantiles[0.95][s], mode="lines", line=dash,
                                 name=f"{prefix}MCMC 90% band", legendgroup=f"mcmc-{m.name}"))
        fig.add_trace(go.Scatter(x=m.epochs[s], y=m.quantiles[0.05][s], mode="lines", line=dash,
                                 showlegend=False, legendgroup=f"mcmc-{m.name}"))
    if target is not None:
        fig.add_hline(y=target, line=dict(color="#888888", dash="dot"), annotation_text="target")
    fig.update_layout(xaxis_title="epoch", yaxis_title=value_label, height=480,
                      margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h", y=-0.18))
    return fig


def density_figure(forecasts: Sequence[CurveForecast], *, target: float | None, best: float) -> go.Figure:
    """Predictive density of the value at the last forecast epoch, one line per curve."""
    fig = go.Figure()
    for k, f in enumerate(forecasts):
        if f.grid is None or f.density is None:
            continue
        color = COLORS[k % len(COLORS)]
        fig.add_trace(go.Scatter(x=f.grid, y=f.density, mode="lines", line=dict(color=color, width=2),
                                 fill="tozeroy" if len(forecasts) == 1 else None,
                                 fillcolor=_rgba(color, 0.2), name=f.name))
    fig.add_vline(x=best, line=dict(color="#555555", dash="dash"), annotation_text="best so far")
    if target is not None:
        fig.add_vline(x=target, line=dict(color="#888888", dash="dot"), annotation_text="target")
    epoch = int(forecasts[0].epochs[-1]) if forecasts else 0
    fig.update_layout(xaxis_title=f"value at epoch {epoch}", yaxis_title="density", height=320,
                      margin=dict(l=10, r=10, t=30, b=10), showlegend=len(forecasts) > 1)
    return fig


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run torch on ``n`` intra-op threads inside the block (the setting is process-wide).

    A forecast is a few small matrix products: one thread takes milliseconds, while several
    threads contending with a training run on the same cores took seconds in our measurements.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# --- Streamlit --------------------------------------------------------------------------------
@st.cache_resource(show_spinner="Loading the model…", max_entries=4)
def load_model(spec: str, stamp: float) -> Any:
    """``LCPFN.from_pretrained(spec)``, once per server; ``stamp`` changes when the files do."""
    from lcpfn import LCPFN

    model = LCPFN.from_pretrained(spec)
    # One throw-away forecast pays torch's first-call costs here, not on the user's first upload.
    with torch_threads(1):
        model.predict(np.linspace(0.2, 0.6, 10), max_epochs=model.native_length)
    return model


def _stamp(spec: str) -> float:
    path = Path(spec).expanduser()
    if not path.is_dir():
        return 0.0
    return max((p.stat().st_mtime for p in path.iterdir() if p.is_file()), default=0.0)


def _model_sidebar(args: argparse.Namespace) -> Any:
    st.sidebar.header("Model")
    default_choice = args.model if args.model in MODEL_CHOICES[:2] else MODEL_CHOICES[2]
    choice = st.sidebar.radio("Model", MODEL_CHOICES, index=MODEL_CHOICES.index(default_choice), key="model",
                              label_visibility="collapsed")
    if choice == MODEL_CHOICES[2]:
        default_dir = "" if args.model in MODEL_CHOICES[:2] else args.model
        spec = st.sidebar.text_input("Checkpoint directory", value=default_dir, key="model_dir").strip()
        if not spec:
            st.info("Enter the path of a checkpoint directory in the sidebar.")
            return None
        spec = str(Path(spec).expanduser())
    else:
        spec = str(choice)
    return load_model(spec, _stamp(spec))


def _read_input(args: argparse.Namespace) -> CurveSet | None:
    examples = example_files()
    start = SOURCES[2] if args.example else SOURCES[0]
    source = st.radio("Data", SOURCES, index=SOURCES.index(start), horizontal=True, key="source",
                      label_visibility="collapsed")
    if source == SOURCES[0]:
        upload = st.file_uploader(
            f"Upload a CSV (at most {MAX_BYTES // 1_000_000} MB): `epoch,value`, one column of values, "
            "or one column per curve",
            type=["csv", "tsv", "txt"], key="upload",
        )
        if upload is None:
            st.info("Upload a CSV of a training run, paste values, or pick a built-in example.")
            return None
        return read_csv(upload.getvalue(), source=f"'{upload.name}'")
    if source == SOURCES[1]:
        text = st.text_area("One value per epoch, separated by commas, spaces or new lines", key="paste",
                            placeholder="0.52, 0.61, 0.66, 0.69, 0.71")
        if not text.strip():
            st.info("Paste the observed values of one curve, one per epoch.")
            return None
        return parse_values(text)
    names = list(examples)
    index = names.index(args.example) if args.example in names else 0
    name = st.selectbox("Example", names, index=index, key="example") or names[index]
    return read_csv(examples[name].read_bytes(), source=f"example '{name}'")


def _settings_sidebar(curve_set: CurveSet, native_length: int) -> Settings:
    fp = fingerprint(curve_set)
    st.sidebar.header("Forecast")
    guess, reason = guess_direction(curve_set)
    picked = st.sidebar.radio("Direction", ("maximize", "minimize"), index=0 if guess == "maximize" else 1,
                              key=f"direction-{fp}", horizontal=True, help=f"Guessed: {guess} ({reason}).")
    direction: Direction = "minimize" if picked == "minimize" else "maximize"
    t_max = curve_set.max_length
    default_epochs = native_length if t_max < native_length else 2 * t_max
    max_epochs = int(st.sidebar.number_input("Total epochs to forecast to", min_value=t_max + 1,
                                             max_value=max(1_000, 4 * t_max), value=default_epochs, step=1,
                                             key=f"epochs-{fp}"))
    target = st.sidebar.number_input("Target value (optional)", value=None, format="%.4g", key=f"target-{fp}",
                                     placeholder="e.g. the best final value so far")
    st.sidebar.header("Value range")
    auto = default_bounds(np.concatenate(curve_set.curves)[None, :], direction=direction)
    known = st.sidebar.checkbox(
        "The metric has a known range", value=False, key=f"scaled-{fp}-{direction}",
        help="The model forecasts values in [0, 1]. Without a known range, values in [0, 1] are used as "
        "they are, a loss (minimised, never negative) is scaled from 0 up, and any other metric is "
        "scaled from each curve's own observed values. With a known range [low, high], that range is "
        "mapped onto [0, 1].",
    )
    bounds: tuple[float, float] | Literal["auto"] = "auto"
    if not known:
        st.sidebar.caption(f"Used: {describe_bounds(auto)}.")
    else:
        y = curve_set.values()
        low0, high0 = min(0.0, float(y.min())), max(1.0, float(y.max()))
        c1, c2 = st.sidebar.columns(2)
        low = c1.number_input("low", value=float(low0), format="%.4g", key=f"low-{fp}-{direction}")
        high = c2.number_input("high", value=float(high0), format="%.4g", key=f"high-{fp}-{direction}")
        bounds = check_range(low, high)
    return Settings(direction=direction, max_epochs=max_epochs, bounds=bounds,
                    target=None if target is None else check_value("target value", target))


def _mcmc_key(fp: str, settings: Settings, indices: Sequence[int]) -> tuple:
    return (fp, settings.direction, settings.max_epochs, settings.bounds, settings.target, tuple(indices))


def _mcmc_section(curve_set: CurveSet, settings: Settings, indices: list[int], pfn_seconds: float) -> None:
    key = _mcmc_key(fingerprint(curve_set), settings, indices)
    st.subheader("Compare with MCMC")
    st.caption("Runs the PyMC baseline (MCMC over the same prior's parametric curves) on the curves shown and "
               "draws its median and 90% band in dashed lines. It takes from seconds to several minutes per "
               "curve; the first run also compiles the model.")
    if st.button("Compare with MCMC", key="mcmc_run"):
        try:
            from lcpfn.mcmc import MCMCPredictor
        except ImportError as exc:
            st.error(f"The MCMC baseline is not available: {exc}")
            return
        start = time.perf_counter()
        with st.status("Running MCMC…", expanded=True) as status:
            bar = st.progress(0.0, text=f"0 of {len(indices)} curves")

            def progress(done: int, total: int) -> None:
                bar.progress(done / total, text=f"{done} of {total} curves, {time.perf_counter() - start:.1f} s")

            try:
                results = forecast_curves(MCMCPredictor(seed=0), curve_set, settings, indices=indices,
                                          density=False, batched=False, progress=progress)
            except Exception as exc:  # the PFN forecast above must stay on the page
                logger.exception("the MCMC baseline failed")
                status.update(label="MCMC failed", state="error", expanded=False)
                st.error(f"The MCMC baseline failed: {type(exc).__name__}: {exc}")
                return
            seconds = time.perf_counter() - start
            status.update(label=f"MCMC finished in {seconds:.1f} s", state="complete", expanded=False)
        st.session_state["mcmc"] = {"key": key, "results": results, "seconds": seconds}
    stored = st.session_state.get("mcmc")
    if stored is None:
        return
    if stored["key"] != key:
        st.caption("The data or settings changed since MCMC ran: press the button to run it again.")
        return
    st.write(f"MCMC took **{stored['seconds']:.1f} s**; LC-PFN took **{pfn_seconds * 1000:.0f} ms**.")


def _show(curve_set: CurveSet, settings: Settings, forecasts: list[CurveForecast], pfn_seconds: float) -> None:
    best = best_so_far(curve_set, settings.direction)
    horizon = settings.max_epochs
    fp = fingerprint(curve_set)
    if curve_set.n_curves == 1:
        f = forecasts[0]
        c1, c2, c3 = st.columns(3)
        c1.metric(f"Median at epoch {horizon}", f"{f.final_median:.4g}")
        c2.metric("90% interval", f"{f.quantiles[0.05][-1]:.4g} – {f.quantiles[0.95][-1]:.4g}")
        if settings.target is not None:
            c3.metric(f"P(final beats target {settings.target:.4g})", f"{f.p_target:.1%}")
        else:
            c3.metric(f"P(final beats best so far {best:.4g})", f"{f.p_best:.1%}")
    chart = st.container()  # drawn last, once the MCMC overlay (if any) is known
    st.caption(f"Forecast by LC-PFN in {pfn_seconds * 1000:.0f} ms. Bands: 50% and 90% credible intervals.")
    shown = [0]
    if curve_set.n_curves > 1:
        ranked = ranking_table(forecasts, best, settings.target)
        st.subheader("Ranking")
        target_note = f"; P(beats target): of beating {settings.target:.4g}" if settings.target is not None else ""
        st.caption(f"Curves ranked by the chance that their value at epoch {horizon} beats the best value seen "
                   f"so far in any curve ({best:.4g}){target_note}.")
        probability = st.column_config.ProgressColumn(min_value=0.0, max_value=1.0, format="%.3f")
        st.dataframe(ranked, hide_index=True,
                     column_config={c: probability for c in ("P(beats best)", "P(beats target)") if c in ranked})
        order = [curve_set.names.index(n) for n in ranked["curve"]]
        shown_names = st.multiselect("Curves in the chart", list(curve_set.names),
                                     default=[curve_set.names[i] for i in order[:MAX_SHOWN]], key=f"shown-{fp}")
        shown = [curve_set.names.index(n) for n in shown_names]
    left, right = st.columns(2)
    with left:
        st.subheader(f"Value at epoch {horizon}")
        st.plotly_chart(density_figure([forecasts[i] for i in shown], target=settings.target, best=best),
                        key="density_chart")
    with right:
        st.subheader("Per-epoch quantiles")
        table = quantile_table([forecasts[i] for i in shown] if shown else forecasts)
        st.dataframe(table, hide_index=True, height=260)
        st.download_button("Download quantiles (CSV)", table.to_csv(index=False).encode(),
                           file_name="forecast_quantiles.csv", mime="text/csv", key="download")
    _mcmc_section(curve_set, settings, shown, pfn_seconds)
    stored = st.session_state.get("mcmc")
    mcmc = stored["results"] if stored and stored["key"] == _mcmc_key(fp, settings, shown) else ()
    label = curve_set.names[0] if curve_set.n_curves == 1 and curve_set.names[0] != "curve" else "value"
    with chart:
        if shown:
            st.plotly_chart(forecast_figure([forecasts[i] for i in shown], target=settings.target, mcmc=mcmc,
                                            value_label=label), key="forecast_chart")
        else:
            st.info("Select curves to draw.")


def _app(args: argparse.Namespace) -> None:
    st.title("Where is this learning curve heading?")
    st.caption("LC-PFN forecasts the rest of a training run from its first epochs, with calibrated uncertainty.")
    model = _model_sidebar(args)
    if model is None:
        return
    curve_set = _read_input(args)
    if curve_set is None:
        return
    for note in curve_set.notes:
        st.caption(f"Note: {note}.")
    settings = _settings_sidebar(curve_set, int(model.native_length))
    start = time.perf_counter()
    try:
        with torch_threads(1):
            forecasts = forecast_curves(model, curve_set, settings)
    except InputError as exc:
        raise InputError(f"{exc} — check the direction and the value range in the sidebar") from None
    pfn_seconds = time.perf_counter() - start
    _show(curve_set, settings, forecasts, pfn_seconds)


def main(argv: Sequence[str] | None = None) -> None:
    st.set_page_config(page_title="LC-PFN: learning-curve forecast", layout="wide")
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        _app(args)
    except (LCPFNError, MissingDependencyError) as exc:
        st.error(str(exc))
    except Exception as exc:  # the session must survive anything; the log keeps the traceback
        logger.exception("unexpected error in the app")
        st.error(f"Something went wrong: {type(exc).__name__}: {exc}")


if __name__ == "__main__":
    main()
