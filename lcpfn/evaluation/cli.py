"""``lcpfn evaluate``: the command line of the evaluation harness.

Only the standard library is imported here (``lcpfn --help`` builds this parser); :func:`run_cli`
imports the harness, numpy and torch when the command runs.
"""

from __future__ import annotations

import argparse

from lcpfn.evaluation.protocol import CUTOFFS, DEFAULT_SOURCES

__all__ = ["add_cli", "run_cli"]


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    """Register ``lcpfn evaluate``."""
    p = subparsers.add_parser(
        "evaluate",
        help="score forecasters on prior or real curves (the paper's benchmark)",
        description=(
            "Score forecasters with the paper's protocol: observe the first 10/20/40/80 % of each curve, "
            "forecast the rest, report mean log-likelihood of the true values, MSE of the median, 90 % "
            "coverage and seconds per curve. Forecasters: pfn:NAME_OR_DIR, mcmc[:key=value,...], last, pow3; "
            "prefix LABEL= to name one, suffix @N to use only the first N curves of each dataset (e.g. mcmc@5). "
            "Results are cached in OUT/cache.jsonl: rerun the same command to resume."
        ),
    )
    p.add_argument("--forecasters", "-f", nargs="+", default=["pfn:default"], metavar="SPEC",
                   help="forecasters to compare (default: pfn:default)")
    p.add_argument("--dataset", "-d", nargs="+", choices=["prior", "real"], default=["prior"],
                   help="prior: reference-prior curves; real: curves from --data-dir (default: prior)")
    p.add_argument("--curves", default=None, metavar="FILE.npz",
                   help="take the prior curves from this file (e.g. drawn by the reference package's sampler)")
    p.add_argument("--n-curves", type=int, default=None,
                   help="curves per dataset (default: 1000 sampled prior curves; all curves of a file or source)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampled prior curves (default: 0)")
    p.add_argument("--prior", default="reference",
                   help="prior the sampled curves come from: reference (the paper's Table 3) or extended "
                   "(default: reference)")
    p.add_argument("--data-dir", default=None, help="real-curve directory (default: ../shared/data if it exists)")
    p.add_argument("--sources", nargs="+", default=None,
                   help=f"real sources (default: {' '.join(DEFAULT_SOURCES)}; 'all' for every one)")
    p.add_argument("--split", choices=["dev", "holdout", "all"], default="dev",
                   help="real-curve split by config hash; tune only on dev (default: dev)")
    p.add_argument("--inputs", choices=["normalised", "raw"], default="normalised",
                   help="normalised: forecasters see prefixes in the normalised space (the paper's protocol); "
                        "raw: in their own units with direction and known bounds (a loss: 0 and none), as a user "
                        "calls predict; scores are in normalised units either way (default: normalised)")
    p.add_argument("--cutoffs", type=float, nargs="+", default=list(CUTOFFS), help="fractions observed")
    p.add_argument("--out", default="evaluation", help="output directory (tables, plots, cache)")
    p.add_argument("--fresh", action="store_true", help="ignore and replace the cache in --out")
    p.add_argument("--chunk-size", type=int, default=None, help="curves per predict call (default per kind)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: the paper's one core)")
    p.add_argument("--plot-curves", type=int, default=4, help="curves per dataset drawn in fan charts")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--no-paper", action="store_true", help="leave the paper's rows out of the table")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_cli)


def run_cli(args: argparse.Namespace) -> int:
    """The ``evaluate`` subcommand: build datasets and forecasters, evaluate, write and print."""
    import sys
    from pathlib import Path

    import torch

    from lcpfn.errors import InputError
    from lcpfn.evaluation.datasets import EvalDataset, default_data_dir, npz_dataset, prior_dataset, real_datasets
    from lcpfn.evaluation.forecasters import build_forecaster
    from lcpfn.evaluation.protocol import _check_cutoffs
    from lcpfn.evaluation.report import describe_machine, write_report
    from lcpfn.evaluation.run import evaluate

    if args.threads < 1:
        raise InputError(f"--threads must be at least 1 but got {args.threads}")
    if args.n_curves is not None and args.n_curves < 1:
        raise InputError(f"--n-curves must be at least 1 but got {args.n_curves}")
    if args.plot_curves < 0:
        raise InputError(f"--plot-curves must be at least 0 but got {args.plot_curves}")
    cutoffs = _check_cutoffs(args.cutoffs)
    torch.set_num_threads(args.threads)
    datasets: list[EvalDataset] = []
    if "prior" in args.dataset:
        if args.curves:
            datasets.append(npz_dataset(args.curves, n_curves=args.n_curves))
        else:
            datasets.append(prior_dataset(args.n_curves or 1000, seed=args.seed, prior=args.prior))
    elif args.curves:
        raise InputError("--curves gives prior curves: use it with --dataset prior")
    if "real" in args.dataset:
        data_dir = args.data_dir or default_data_dir()
        if data_dir is None:
            raise InputError(
                "--dataset real needs a directory of real curves: pass --data-dir DIR, one folder per source "
                "(e.g. DIR/lcbench_surrogate/*.npz, arrays values/lengths/task/config_id/metric/higher_is_better as "
                "in the project's development data, ../shared/data, which is not shipped and not found here); "
                "--dataset prior needs no data"
            )
        datasets += real_datasets(data_dir, sources=args.sources, split=args.split, n_curves=args.n_curves)
    forecasters = [build_forecaster(s, chunk_size=args.chunk_size) for s in args.forecasters]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cache = out / "cache.jsonl"
    if args.fresh and cache.exists():
        cache.unlink()
    results = evaluate(
        forecasters, datasets, cutoffs=cutoffs, cache=cache, plot_curves=args.plot_curves, inputs=args.inputs,
        progress=not args.no_progress and sys.stderr.isatty(),
    )  # fmt: skip
    machine = describe_machine(args.threads)
    command = _command_line(args)
    md, written = write_report(
        results, datasets, out, machine=machine, paper=not args.no_paper, plots=not args.no_plots, command=command
    )
    print(md)
    print("written: " + ", ".join(str(p) for p in written + [cache]))
    return 0


def _command_line(args: argparse.Namespace) -> str:
    """The options that decide the numbers, as an ``lcpfn evaluate`` command (for the report)."""
    parts = ["lcpfn evaluate", "--forecasters", *args.forecasters, "--dataset", *args.dataset]
    if args.curves:
        parts += ["--curves", str(args.curves)]
    if args.n_curves is not None:
        parts += ["--n-curves", str(args.n_curves)]
    if "prior" in args.dataset and not args.curves:
        parts += ["--seed", str(args.seed)]
        if args.prior != "reference":
            parts += ["--prior", args.prior]
    if "real" in args.dataset:
        if args.data_dir:
            parts += ["--data-dir", str(args.data_dir)]
        if args.sources:
            parts += ["--sources", *args.sources]
        parts += ["--split", args.split]
    if args.inputs != "normalised":
        parts += ["--inputs", args.inputs]
    if list(args.cutoffs) != list(CUTOFFS):
        parts += ["--cutoffs", *(f"{c:g}" for c in args.cutoffs)]
    parts += ["--threads", str(args.threads)]
    if args.chunk_size is not None:
        parts += ["--chunk-size", str(args.chunk_size)]
    return " ".join(parts)
