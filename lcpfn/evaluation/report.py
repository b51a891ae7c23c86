"""Summaries and reports of an evaluation: mean scores per (forecaster, dataset, cutoff), paired
head-to-head comparisons, Markdown and CSV tables beside the paper's Table 3, and the plots."""

from __future__ import annotations

import csv
import logging
import math
import os
import platform
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lcpfn.evaluation.datasets import EvalDataset
from lcpfn.evaluation.plots import plot_fan_charts, plot_ll_vs_runtime
from lcpfn.evaluation.protocol import CUTOFFS, PAPER_TABLE3
from lcpfn.evaluation.run import CurveResult
from lcpfn.metrics import mean_and_se

__all__ = [
    "SummaryRow",
    "summarize",
    "HeadToHead",
    "head_to_head",
    "format_head_to_head",
    "format_markdown",
    "write_csv",
    "write_report",
    "describe_machine",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SummaryRow:
    """Scores of one forecaster on one dataset at one cutoff, averaged over the scored curves."""

    forecaster: str
    dataset: str
    split: str
    cutoff: float
    n_curves: int
    n_failed: int
    ll: float
    ll_se: float
    ll_median: float
    mse: float
    coverage: float
    seconds_per_curve: float
    cpu_seconds_per_curve: float


def summarize(results: Sequence[CurveResult], *, first_n: int | None = None) -> list[SummaryRow]:
    """Mean scores per (forecaster, dataset, cutoff), in first-seen order.

    ``first_n``: only curves with index below it (the subset every forecaster saw when some were
    capped with ``@N``). Rejected curves are counted in ``n_failed`` and left out of the means.
    """
    groups: dict[tuple[str, str, float], list[CurveResult]] = {}
    for r in results:
        if first_n is not None and r.index >= first_n:
            continue
        groups.setdefault((r.forecaster, r.dataset, r.cutoff), []).append(r)
    out = []
    for (fc, ds, frac), rows in groups.items():
        ok = [r for r in rows if r.error is None]
        nan = math.nan
        if ok:
            ll = np.array([r.ll for r in ok])
            ll_mean, ll_se = mean_and_se(ll)
            mse = float(np.mean([r.mse for r in ok]))
            cov = float(np.mean([r.coverage for r in ok]))
            sec = float(np.mean([r.seconds for r in ok]))
            cpu = float(np.mean([r.cpu_seconds for r in ok]))
            med = float(np.median(ll))
        else:
            ll_mean = ll_se = mse = cov = sec = cpu = med = nan
        out.append(
            SummaryRow(
                forecaster=fc, dataset=ds, split=rows[0].split, cutoff=frac, n_curves=len(ok),
                n_failed=len(rows) - len(ok), ll=ll_mean, ll_se=ll_se, ll_median=med, mse=mse,
                coverage=cov, seconds_per_curve=sec, cpu_seconds_per_curve=cpu,
            )
        )  # fmt: skip
    return out


@dataclass(frozen=True)
class HeadToHead:
    """Forecaster ``a`` against ``b`` on the curves and cutoffs both scored (paired)."""

    a: str
    b: str
    dataset: str
    cutoff: float
    n_curves: int
    ll_diff: float  # mean over curves of LL(a) - LL(b)
    ll_diff_se: float  # standard error of that mean (paired)
    a_wins: float  # fraction of curves where a's LL is higher
    speedup: float  # mean seconds per curve of b / of a, on these curves
    cpu_speedup: float  # the same for CPU seconds


def head_to_head(results: Sequence[CurveResult], a: str, b: str) -> list[HeadToHead]:
    """Paired comparison of forecasters ``a`` and ``b`` per (dataset, cutoff).

    Only (curve, cutoff) pairs that both scored (neither rejected) count, so the LL difference
    and the speed ratio are measured on exactly the same forecasting problems.
    """
    by_key: dict[tuple[str, str, float], dict[str, CurveResult]] = {}
    for r in results:
        if r.forecaster in (a, b) and r.error is None:
            by_key.setdefault((r.dataset, r.curve, r.cutoff), {})[r.forecaster] = r
    groups: dict[tuple[str, float], list[tuple[CurveResult, CurveResult]]] = {}
    for (ds, _, frac), pair in by_key.items():
        if a in pair and b in pair:
            groups.setdefault((ds, frac), []).append((pair[a], pair[b]))
    out = []
    for (ds, frac), pairs in groups.items():
        diff = np.array([ra.ll - rb.ll for ra, rb in pairs])
        mean, se = mean_and_se(diff)
        sec_a, sec_b = (float(np.mean([p[k].seconds for p in pairs])) for k in (0, 1))
        cpu_a, cpu_b = (float(np.mean([p[k].cpu_seconds for p in pairs])) for k in (0, 1))
        out.append(HeadToHead(
            a=a, b=b, dataset=ds, cutoff=frac, n_curves=len(pairs), ll_diff=mean, ll_diff_se=se,
            a_wins=float(np.mean(diff > 0)), speedup=sec_b / sec_a if sec_a > 0 else math.nan,
            cpu_speedup=cpu_b / cpu_a if cpu_a > 0 else math.nan,
        ))  # fmt: skip
    return sorted(out, key=lambda h: (h.dataset, h.cutoff))


def format_head_to_head(rows: Sequence[HeadToHead]) -> str:
    """Markdown table of :func:`head_to_head` rows."""
    lines = [
        "| A | B | dataset | cutoff | curves | LL(A) − LL(B) ± s.e. | A better on | speed-up of A (wall) | (CPU) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for h in rows:
        lines.append(
            f"| {h.a} | {h.b} | {h.dataset} | {h.cutoff:.0%} | {h.n_curves} | {h.ll_diff:+.3f} ± {h.ll_diff_se:.3f} | "
            f"{h.a_wins:.0%} | {_fmt_ratio(h.speedup)} | {_fmt_ratio(h.cpu_speedup)} |"
        )
    return "\n".join(lines) + "\n"


def describe_machine(threads: int | None = None) -> str:
    """CPU model, cores, torch version and threads, for the report."""
    import torch

    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    t = threads if threads is not None else torch.get_num_threads()
    return f"{model}, {os.cpu_count()} logical CPUs, torch {torch.__version__} (CPU threads: {t})"


def _fmt(v: float, digits: int = 3) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def _fmt_seconds(v: float) -> str:
    if math.isnan(v):
        return "–"
    return f"{v:.2g}" if v < 0.01 else f"{v:.3g}"


def _fmt_ratio(v: float) -> str:
    """A speed ratio: whole numbers from 10 on (``3,000×``), else two significant digits without
    trailing zeros (``2.5×``, ``0.37×``, ``0.0002×``), so no non-zero ratio prints as ``0×``."""
    if math.isnan(v):
        return "–"
    if abs(v) >= 10 or v == 0:
        return f"{v:,.0f}×"
    decimals = max(0, 1 - math.floor(math.log10(abs(v))))
    return f"{v:.{decimals}f}".rstrip("0").rstrip(".") + "×"


def _nanmean(values: Sequence[float]) -> float:
    a = np.asarray(values, dtype=np.float64)
    return float(np.mean(a[~np.isnan(a)])) if np.any(~np.isnan(a)) else math.nan


def _pivot(summary: Sequence[SummaryRow]) -> tuple[list[float], dict[tuple[str, str], dict[float, SummaryRow]]]:
    cutoffs = sorted({r.cutoff for r in summary})
    table: dict[tuple[str, str], dict[float, SummaryRow]] = {}
    for r in summary:
        table.setdefault((r.forecaster, r.dataset), {})[r.cutoff] = r
    return cutoffs, table


def format_markdown(
    summary: Sequence[SummaryRow],
    *,
    datasets: Sequence[EvalDataset] = (),
    paper: bool = True,
    machine: str | None = None,
    paired: Sequence[SummaryRow] | None = None,
    paired_n: int | None = None,
) -> str:
    """Markdown tables: LL (with the paper's Table 3 rows beside ours for prior datasets), MSE of
    the median, 90 % coverage, and seconds per curve."""
    cutoffs, table = _pivot(summary)
    kinds = {d.name: d for d in datasets}
    cols = " | ".join(f"{c:.0%}" for c in cutoffs)
    sep = "|---" * (len(cutoffs) + 6) + "|"
    lines = []
    if machine:
        lines += [f"Machine: {machine}.", ""]
    lines += [
        "### Log-likelihood (higher is better; mean over curves ± standard error)",
        "",
        "Curves: per dataset; rejected: curves the forecaster refused at each cutoff (left out of the means).",
        "",
        f"| forecaster | dataset | split | curves | {cols} | s / curve | CPU s / curve |",
        sep,
    ]
    for (fc, ds), row in table.items():
        cells = " | ".join(
            f"{_fmt(row[c].ll)} ± {_fmt(row[c].ll_se)}" if c in row else "–" for c in cutoffs
        )
        any_row = next(iter(row.values()))
        n = max(r.n_curves + r.n_failed for r in row.values())
        failed = [row[c].n_failed if c in row else 0 for c in cutoffs]
        n_txt = f"{n}" + (f" (rejected: {'/'.join(map(str, failed))})" if any(failed) else "")
        sec = _nanmean([r.seconds_per_curve for r in row.values()])
        cpu = _nanmean([r.cpu_seconds_per_curve for r in row.values()])
        lines.append(
            f"| {fc} | {ds} | {any_row.split} | {n_txt} | {cells} | {_fmt_seconds(sec)} | {_fmt_seconds(cpu)} |"
        )
    show_paper = paper and any(d.kind == "prior" for d in kinds.values()) and tuple(cutoffs) == CUTOFFS
    if show_paper:
        for p in PAPER_TABLE3:
            cells = " | ".join(f"{v:.3f}" for v in p.ll)
            lines.append(
                f"| paper {p.label} | paper: 10,000 prior curves | – | 10000 | {cells} | "
                f"{p.seconds_per_curve:g} (Xeon Gold 6242 core) | – |"
            )
    for title, attr, digits in (
        ("MSE of the predictive median (lower is better)", "mse", 5),
        ("Coverage of the central 90 % interval (target 0.90)", "coverage", 3),
        ("Median over curves of the per-curve LL", "ll_median", 3),
    ):
        lines += ["", f"### {title}", "", f"| forecaster | dataset | {cols} |", "|---" * (len(cutoffs) + 2) + "|"]
        for (fc, ds), row in table.items():
            cells = " | ".join(_fmt(getattr(row[c], attr), digits) if c in row else "–" for c in cutoffs)
            lines.append(f"| {fc} | {ds} | {cells} |")
    if paired:
        lines += ["", f"### Paired: the first {paired_n} curves of each dataset (seen by every forecaster)", ""]
        p_cut, p_table = _pivot(paired)
        lines += [f"| forecaster | dataset | curves | {' | '.join(f'LL {c:.0%}' for c in p_cut)} | "
                  f"{' | '.join(f'MSE {c:.0%}' for c in p_cut)} | s / curve |",
                  "|---" * (2 * len(p_cut) + 4) + "|"]  # fmt: skip
        for (fc, ds), row in p_table.items():
            ll = " | ".join(_fmt(row[c].ll) if c in row else "–" for c in p_cut)
            mse = " | ".join(_fmt(row[c].mse, 5) if c in row else "–" for c in p_cut)
            n = max(r.n_curves for r in row.values())
            sec = _nanmean([r.seconds_per_curve for r in row.values()])
            lines.append(f"| {fc} | {ds} | {n} | {ll} | {mse} | {_fmt_seconds(sec)} |")
    if datasets:
        lines += ["", "Datasets:"]
        lines += [f"- `{d.name}` ({d.kind}, split {d.split}): {d.notes}" for d in datasets]
    if show_paper:
        lines += ["", "Paper rows: Adriaensen et al. (2023), Table 3, on 10,000 prior curves; their runtimes are "
                  "per curve on one Xeon Gold 6242 core:"]
        lines += [f"- {p.label}: {p.method}" for p in PAPER_TABLE3]
    return "\n".join(lines) + "\n"


def write_csv(summary: Sequence[SummaryRow], path: str | Path) -> None:
    """The summary as CSV, one row per (forecaster, dataset, cutoff)."""
    names = list(SummaryRow.__dataclass_fields__)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(names)
        for r in summary:
            w.writerow([getattr(r, k) for k in names])


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "dataset"



def write_report(
    results: Sequence[CurveResult],
    datasets: Sequence[EvalDataset],
    out_dir: str | Path,
    *,
    machine: str | None = None,
    paper: bool = True,
    plots: bool = True,
    command: str | None = None,
) -> tuple[str, list[Path]]:
    """Write ``results.md``, ``results.csv``, ``per_curve.csv`` and PNG plots into ``out_dir``.

    Returns the Markdown text and the written paths. Plots are skipped (with a logged warning)
    when matplotlib is not installed.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(results)
    # curves per (forecaster, dataset): when a cap (@N) made them differ, add the paired table
    seen: dict[tuple[str, str], int] = {}
    for r in results:
        seen[(r.forecaster, r.dataset)] = max(seen.get((r.forecaster, r.dataset), 0), r.index + 1)
    smallest = min(seen.values()) if seen else None
    paired = summarize(results, first_n=smallest) if smallest is not None and smallest < max(seen.values()) else None
    md = format_markdown(summary, datasets=datasets, paper=paper, machine=machine, paired=paired, paired_n=smallest)
    names = list(dict.fromkeys(r.forecaster for r in results))
    h2h = [h for other in names[1:] for h in head_to_head(results, names[0], other)]
    if h2h:
        md += (f"\n### Head to head: {names[0]} against each other forecaster, on the same curves and cutoffs\n\n"
               "Paired over the (curve, cutoff) problems both scored; speed-up = seconds per curve of B / of A.\n\n"
               + format_head_to_head(h2h))
    if command:
        md = f"Command: `{command}`\n\n" + md
    written = []
    (out / "results.md").write_text(md, encoding="utf-8")
    written.append(out / "results.md")
    write_csv(summary, out / "results.csv")
    written.append(out / "results.csv")
    _write_per_curve(results, out / "per_curve.csv")
    written.append(out / "per_curve.csv")
    if plots:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            log.warning("matplotlib is not installed: no plots (pip install 'lcpfn[plot]')")
        else:
            for ds in datasets:
                p = out / f"fan_{_slug(ds.name)}.png"
                if plot_fan_charts(results, ds, p):
                    written.append(p)
                p = out / f"ll_vs_runtime_{_slug(ds.name)}.png"
                if plot_ll_vs_runtime(summary, ds, p, paper=paper):
                    written.append(p)
    return md, written


def _write_per_curve(results: Sequence[CurveResult], path: Path) -> None:
    names = [k for k in CurveResult.__dataclass_fields__ if k != "bands"]
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(names)
        for r in results:
            w.writerow([getattr(r, k) for k in names])
