"""Plots of an evaluation (matplotlib, imported when a plot is drawn): fan charts of the forecasts
and LL against runtime beside the paper's rows."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lcpfn.evaluation.protocol import CUTOFFS, PAPER_TABLE3, cutoff_index

if TYPE_CHECKING:
    from lcpfn.evaluation.datasets import EvalDataset
    from lcpfn.evaluation.report import SummaryRow
    from lcpfn.evaluation.run import CurveResult

__all__ = ["plot_fan_charts", "plot_ll_vs_runtime"]


def plot_fan_charts(results: Sequence[CurveResult], dataset: EvalDataset, path: str | Path) -> bool:
    """Fan charts (median and 90 % band of every forecaster) of the plotted curves of ``dataset``,
    one row per curve and one column per cutoff. Returns False if there was nothing to draw."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in results if r.dataset == dataset.name and r.bands is not None]
    if not rows:
        return False
    curves = sorted({r.index for r in rows})
    cutoffs = sorted({r.cutoff for r in rows})
    labels = list(dict.fromkeys(r.forecaster for r in rows))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, axes = plt.subplots(len(curves), len(cutoffs), figsize=(3.2 * len(cutoffs), 2.4 * len(curves)), squeeze=False)
    for a, i in enumerate(curves):
        for b, frac in enumerate(cutoffs):
            ax = axes[a, b]
            length = len(dataset.curves[i])
            c = cutoff_index(length, frac)
            obs, fut = dataset.normalised(i, c)
            t = np.arange(1, length + 1)
            ax.plot(t[:c], obs, "k.", ms=3)
            ax.plot(t[c:], fut, ".", color="0.6", ms=3)
            for k, lab in enumerate(labels):
                hit = [r for r in rows if r.index == i and r.cutoff == frac and r.forecaster == lab]
                if not hit or hit[0].bands is None:
                    continue
                bands = hit[0].bands
                col = colors[k % len(colors)]
                ax.fill_between(t[c:], bands["0.05"], bands["0.95"], color=col, alpha=0.18, lw=0)
                ax.plot(t[c:], bands["0.5"], "-", color=col, lw=1.2, label=f"{lab} (LL {hit[0].ll:.2f})")
            ax.axvline(c + 0.5, color="0.8", lw=0.8)
            name = dataset.ids[i] if len(dataset.ids[i]) <= 28 else "…" + dataset.ids[i][-27:]
            ax.set_title(f"{name} @ {frac:.0%}", fontsize=7)
            ax.tick_params(labelsize=7)
            ax.legend(fontsize=6, loc="lower right")
    fig.suptitle(f"{dataset.name}: median and 90 % band (normalised units); grey: the truth", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_ll_vs_runtime(
    summary: Sequence[SummaryRow], dataset: EvalDataset, path: str | Path, *, paper: bool = True
) -> bool:
    """LL against seconds per curve (log axis), one panel per cutoff, like the paper's Figure 3."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in summary if r.dataset == dataset.name and not math.isnan(r.ll)]
    if not rows:
        return False
    cutoffs = sorted({r.cutoff for r in rows})
    labels = list(dict.fromkeys(r.forecaster for r in rows))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, axes = plt.subplots(1, len(cutoffs), figsize=(3.3 * len(cutoffs), 3.2), squeeze=False)
    for b, frac in enumerate(cutoffs):
        ax = axes[0, b]
        for k, lab in enumerate(labels):
            hit = [r for r in rows if r.cutoff == frac and r.forecaster == lab]
            if hit:
                r = hit[0]
                ax.errorbar(max(r.seconds_per_curve, 1e-6), r.ll, yerr=0 if math.isnan(r.ll_se) else r.ll_se,
                            fmt="o", color=colors[k % len(colors)], label=lab)  # fmt: skip
        if paper and dataset.kind == "prior" and frac in CUTOFFS:
            j = CUTOFFS.index(frac)
            for p in PAPER_TABLE3:
                ax.plot(p.seconds_per_curve, p.ll[j], "s", mfc="none", color="0.4")
                ax.annotate(f"paper {p.label}", (p.seconds_per_curve, p.ll[j]), fontsize=6, xytext=(3, 2),
                            textcoords="offset points")  # fmt: skip
        ax.set_xscale("log")
        ax.set_title(f"cutoff {frac:.0%}", fontsize=9)
        ax.set_xlabel("seconds per curve", fontsize=8)
        if b == 0:
            ax.set_ylabel("log-likelihood", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0, -1].legend(fontsize=6)
    fig.suptitle(f"{dataset.name}: LL vs runtime (paper rows: one Xeon Gold 6242 core)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
