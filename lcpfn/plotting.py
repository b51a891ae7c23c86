"""Fan charts of forecasts (needs matplotlib: ``pip install 'lcpfn[plot]'``)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from lcpfn.errors import require
from lcpfn.forecast import Forecast


def plot_forecasts(forecasts: Sequence[tuple[Forecast, Sequence[str]]], *, path: str | Path) -> None:
    """Several forecasts (with their curve names) on one fan chart, saved to ``path``."""
    require("matplotlib", extra="plot", feature="plotting")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    offset = 0
    for fc, names in forecasts:
        plot_forecast(fc, names=names, ax=ax, color_offset=offset)
        offset += fc.n_curves
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_forecast(
    fc: Forecast, *, names: Sequence[str] | None = None, path: str | Path | None = None, ax=None, color_offset: int = 0
):
    """Observed points, median and 50 % / 90 % bands of every curve; saved to ``path`` if given."""
    require("matplotlib", extra="plot", feature="plotting")
    import matplotlib

    if ax is None and path is not None:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    own = ax is None
    if own:
        fig, ax = plt.subplots(figsize=(7, 4))
    q = {p: np.atleast_2d(fc.quantile(p)) for p in (0.05, 0.25, 0.5, 0.75, 0.95)}
    t_obs = np.arange(1, fc.observed.shape[1] + 1)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
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
    if own and path is not None:
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
    return ax
