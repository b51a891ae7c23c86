"""Sample curves of the priors, one panel per component: reference and extended, then realrun.

Each component panel draws from ``ExtendedPrior`` with ``p_reference = 0``, only that component
switched on (probability 1) and a pinned noise level (see :func:`only`); with one seed for every
panel the base curves are the same, so the panels show each component's effect on the same
reference curves. The first two panels show the reference prior and the default mixture.
Noisy values are solid lines, noiseless curves dotted, in the model space (epochs ``1..L``).

The second figure does the same for ``RealRunPrior`` (see :func:`realrun_only`): its default mixture
over the default ``extended`` base, then one panel per component over the same reference base
curves (low noise, so the components show), with markers on the evaluation points where their
spacing is the component, and a long run (``L = 1000``) with the default components.

    python benchmarks/plot_prior_samples.py         # writes docs/extended-prior.png and docs/realrun-prior.png
    python benchmarks/plot_prior_samples.py --out /tmp/x.png --realrun-out /tmp/y.png --curves 6 --seq-len 200
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path

import matplotlib
import torch
from matplotlib.figure import Figure

from lcpfn.priors import CurveBatch, ExtendedPrior, RealRunPrior, ReferencePrior
from lcpfn.priors.extended import COMPONENTS

OUT = Path(__file__).resolve().parent.parent / "docs" / "extended-prior.png"
REALRUN_OUT = OUT.with_name("realrun-prior.png")

TITLES = {
    "slow_start": "slow start (log-time sigmoid warm-up)",
    "step": "step schedule (1-2 jumps)",
    "late_rise": "late rise (ends with the run)",
    "overfit": "overfitting (decline after a peak)",
    "collapse": "collapse / divergence",
    "flat": "near-constant",
    "low_noise": "low noise (std 4.5e-5 .. 6.7e-3)",
    "heteroscedastic": "heteroscedastic noise",
    "ar1": "AR(1)-correlated noise",
    "outliers": "outliers",
    "quantize": "quantised values (n in 20..50)",
}


NOISE_COMPONENTS = ("heteroscedastic", "ar1", "outliers", "quantize")


def only(component: str) -> ExtendedPrior:
    """The extended prior with ``p_reference = 0`` and only ``component`` switched on.

    The noise level is pinned so each panel shows its component rather than the reference's
    occasional very noisy curve: std 0.03 for the noise components, ~0.01 for the shapes; the
    quantisation panel uses coarse grids (``n`` in 20..50) so that its steps are visible.
    """
    probs = {f"p_{c}": float(c == component) for c in COMPONENTS}
    noise = dict(noise_log_mean=-3.5, noise_log_std=0.0) if component in NOISE_COMPONENTS else dict(
        noise_log_mean=-4.5, noise_log_std=0.5
    )
    if component == "quantize":  # coarse grids only, so the steps are visible at this scale
        noise["quantize_levels_range"] = (20.0, 50.0)
    return dataclasses.replace(ExtendedPrior(), p_reference=0.0, **probs, **noise)


def panels(n: int, seq_len: int, seed: int) -> list[tuple[str, CurveBatch]]:
    def draw(prior) -> CurveBatch:
        return prior.sample(n, seq_len=seq_len, generator=torch.Generator().manual_seed(seed))

    out = [("reference prior", draw(ReferencePrior())),
           ("extended prior (default mixture)", draw(ExtendedPrior()))]
    return out + [
        (TITLES[c] + (" (std 0.03)" if c in NOISE_COMPONENTS else ""), draw(only(c))) for c in COMPONENTS
    ]


_REALRUN_OFF = dict(p_offgrid_end=0.0, p_log_spaced=0.0, p_irregular=0.0, p_dense_end=0.0, p_warmup=0.0,
                    p_schedule=0.0, p_spike=0.0, p_divergence=0.0)
# panel title -> the settings that switch one component on (on top of _REALRUN_OFF)
REALRUN_PANELS: dict[str, dict[str, object]] = {
    "warm-up with a dip (p_warmup_dip = 1)": dict(p_warmup=1.0, p_warmup_dip=1.0, warmup_range=(0.05, 0.15)),
    "cosine decay": dict(p_schedule=1.0, schedule_weights=(1, 0, 0, 0), anneal_gain_range=(0.1, 0.4)),
    "linear decay": dict(p_schedule=1.0, schedule_weights=(0, 1, 0, 0), anneal_gain_range=(0.1, 0.4)),
    "step decay (1-3 milestones)": dict(p_schedule=1.0, schedule_weights=(0, 0, 1, 0), anneal_gain_range=(0.1, 0.4)),
    "WSD: cool-down in the last 10-20 %": dict(p_schedule=1.0, schedule_weights=(0, 0, 0, 1),
                                               anneal_gain_range=(0.1, 0.4)),
    "spikes (isolated or recovering)": dict(p_spike=1.0),
    "divergence (to chance, stays)": dict(p_divergence=1.0),
    "off-grid last evaluation": dict(p_offgrid_end=1.0),
    "log-spaced evaluations": dict(p_log_spaced=1.0),
    "irregular evaluations": dict(p_irregular=1.0),
    "dense evaluations at the end": dict(p_dense_end=1.0),
}
_MARKED = {"off-grid last evaluation", "log-spaced evaluations", "irregular evaluations",
           "dense evaluations at the end"}


def realrun_only(**settings: object) -> RealRunPrior:
    """``RealRunPrior`` over the reference prior (noise std ~0.005) with only ``settings`` on."""
    base = dict(noise_log_mean=-5.3, noise_log_std=0.3)
    return RealRunPrior(base="reference", base_settings=base, **{**_REALRUN_OFF, **settings})  # type: ignore[arg-type]


def realrun_panels(n: int, seq_len: int, seed: int) -> list[tuple[str, CurveBatch]]:
    def draw(prior, length: int = seq_len) -> CurveBatch:
        return prior.sample(n, seq_len=length, generator=torch.Generator().manual_seed(seed))

    out = [("realrun prior (default mixture, extended base)", draw(RealRunPrior())),
           ("reference base, no component", draw(realrun_only()))]
    out += [(title, draw(realrun_only(**settings))) for title, settings in REALRUN_PANELS.items()]
    long = RealRunPrior(base="reference", base_settings=dict(noise_log_mean=-5.3, noise_log_std=0.3))
    return out + [("default components, reference base, L = 1000", draw(long, 1000))]


def _grid(rows: list[tuple[str, CurveBatch]], title: str, *, marked: frozenset[str] = frozenset()) -> Figure:
    n_rows = math.ceil(len(rows) / 4)
    fig = Figure(figsize=(16, 10 * n_rows / 3))  # no pyplot: no global backend or figure registry
    axes = fig.subplots(n_rows, 4, sharey=True, squeeze=False)
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (name, batch) in zip(axes.flat, rows):
        for i in range(batch.batch_size):
            c = colors[i % len(colors)]
            x = batch.epochs[i].numpy()
            style = dict(marker=".", ms=3) if name in marked else {}
            ax.plot(x, batch.values[i].numpy(), color=c, lw=0.8, **style)
            ax.plot(x, batch.noiseless[i].numpy(), color=c, lw=0.8, ls=":")
        ax.set_title(name, fontsize=10)
        ax.set_ylim(-0.45, 1.15)
        ax.axhline(0, color="0.7", lw=0.5)
        ax.axhline(1, color="0.7", lw=0.5)
        ax.set_xlabel("epoch (budget = the last)", fontsize=8)
    for ax in axes.flat[len(rows):]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("value (model space)")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--realrun-out", type=Path, default=REALRUN_OUT)
    parser.add_argument("--curves", type=int, default=8, help="curves per panel")
    parser.add_argument("--seq-len", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dpi", type=int, default=60)
    args = parser.parse_args()

    rows = panels(args.curves, args.seq_len, args.seed)
    n_rows = math.ceil(len(rows) / 4)
    fig = Figure(figsize=(16, 10 * n_rows / 3))  # no pyplot: no global backend or figure registry
    axes = fig.subplots(n_rows, 4, sharex=True, sharey=True, squeeze=False)
    epochs = torch.arange(1, args.seq_len + 1).numpy()
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (title, batch) in zip(axes.flat, rows):
        for i in range(batch.batch_size):
            c = colors[i % len(colors)]
            ax.plot(epochs, batch.values[i].numpy(), color=c, lw=0.8)
            ax.plot(epochs, batch.noiseless[i].numpy(), color=c, lw=0.8, ls=":")
        ax.set_title(title, fontsize=10)
        ax.set_ylim(-0.45, 1.15)
        ax.axhline(0, color="0.7", lw=0.5)
        ax.axhline(1, color="0.7", lw=0.5)
    for ax in axes.flat[len(rows):]:
        ax.axis("off")
    for col in range(min(4, len(rows))):  # the lowest panel of each column gets the epoch axis
        ax = axes[(len(rows) - 1 - col) // 4, col]
        ax.xaxis.set_tick_params(labelbottom=True)
        ax.set_xlabel("epoch")
    for ax in axes[:, 0]:
        ax.set_ylabel("value (model space)")
    fig.suptitle(
        f"LC-PFN priors: {args.curves} curves per panel, seq_len {args.seq_len}, seed {args.seed} "
        "(solid: observed values, dotted: noiseless)",
        fontsize=11,
    )
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=args.dpi)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KB)")

    fig = _grid(realrun_panels(args.curves, args.seq_len, args.seed),
                f"RealRunPrior: {args.curves} curves per panel, seq_len {args.seq_len}, seed {args.seed} "
                "(solid: observed values, dotted: noiseless; dots: evaluation points)", marked=frozenset(_MARKED))
    args.realrun_out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.realrun_out, dpi=args.dpi)
    print(f"wrote {args.realrun_out} ({args.realrun_out.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
