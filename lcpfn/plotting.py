"""Fan charts of forecasts (needs matplotlib: ``pip install 'lcpfn[plot]'``).

Charts saved to a file are drawn on a :class:`matplotlib.figure.Figure` with the Agg canvas, not
through pyplot: nothing here changes matplotlib's backend or pyplot's list of open figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lcpfn.errors import require
from lcpfn.forecast import Forecast

_FIGSIZE = (7, 4)
_DPI = 120


def _figure() -> Any:
    """A figure outside pyplot, drawn by the Agg canvas (PNG without a display)."""
    require("matplotlib", extra="plot", feature="plotting")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=_FIGSIZE)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: str | Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=_DPI)


def plot_forecasts(forecasts: Sequence[tuple[Forecast, Sequence[str]]], *, path: str | Path) -> None:
    """Several forecasts (with their curve names) on one fan chart, saved to ``path``."""
    fig = _figure()
    ax = fig.subplots()
    offset = 0
    for fc, names in forecasts:
        plot_forecast(fc, names=names, ax=ax, color_offset=offset)
        offset += fc.n_curves
    _save(fig, path)


def plot_forecast(
    fc: Forecast, *, names: Sequence[str] | None = None, path: str | Path | None = None, ax=None, color_offset: int = 0
):
    """Observed points, median and 50 % / 90 % bands of every curve; returns the axes.

    Draws on ``ax`` if given; otherwise on a new figure, saved to ``path`` if given, or, without
    a path, a pyplot figure (shown as the caller's backend shows figures, e.g. in a notebook).
    """
    require("matplotlib", extra="plot", feature="plotting")
    import matplotlib

    if ax is None:
        if path is not None:
            ax = _figure().subplots()
        else:
            import matplotlib.pyplot as plt

            _, ax = plt.subplots(figsize=_FIGSIZE)
    q = {p: np.atleast_2d(fc.quantile(p)) for p in (0.05, 0.25, 0.5, 0.75, 0.95)}
    t_obs = np.arange(1, fc.observed.shape[1] + 1)
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    for i in range(fc.n_curves):
        c = colors[(i + color_offset) % len(colors)]
        label = names[i] if names else f"curve {i + 1}"
        ax.plot(t_obs, fc.observed[i], "o", ms=3, color=c, label=f"{label} (observed)")
        ax.fill_between(fc.epochs, q[0.05][i], q[0.95][i], color=c, alpha=0.15, lw=0)
        ax.fill_between(fc.epochs, q[0.25][i], q[0.75][i], color=c, alpha=0.3, lw=0)
        ax.plot(fc.epochs, q[0.5][i], "-", color=c, lw=1.5, label=f"{label} (median, 50/90 %)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("value")
    ax.legend(fontsize=8)
    if path is not None:
        _save(ax.figure, path)
    return ax
