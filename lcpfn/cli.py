"""The ``lcpfn`` command line: ``train``, ``predict``, ``evaluate``, ``app``.

Each subcommand parses its options into a config and calls the library function a user would.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import fields
from pathlib import Path
from typing import Sequence

from lcpfn.errors import LCPFNError, MissingDependencyError


def _add_train(sub: argparse._SubParsersAction) -> None:
    from lcpfn.train import TrainConfig

    p = sub.add_parser(
        "train",
        help="train a PFN on a curve prior",
        description="Train a PFN on a synthetic curve prior; checkpoints go to OUT_DIR and --resume continues "
        "a run exactly. Run under `torchrun --nproc_per_node N -m lcpfn.cli train ...` for multi-GPU/CPU DDP.",
    )
    p.add_argument("--out-dir", required=True, help="directory for checkpoints (and the final model)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out-dir")
    p.add_argument("--curves", type=int, default=None, help="train on this many curves (sets --steps)")
    p.add_argument("--time-limit", type=float, default=None, metavar="MINUTES",
                   help="stop this session after MINUTES with a checkpoint (resume later)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    defaults = TrainConfig(out_dir="")
    for f in fields(TrainConfig):
        if f.name == "out_dir":
            continue
        default = getattr(defaults, f.name)
        flag = "--" + f.name.replace("_", "-")
        if isinstance(default, bool):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=default)
        elif f.name == "threads":
            p.add_argument(flag, type=int, default=None, help="torch CPU threads")
        elif f.name == "prior_settings":
            p.add_argument("--prior-setting", dest="prior_settings", action="append", default=None,
                           metavar="NAME=VALUE",
                           help="change a field of the prior from its default, VALUE in JSON (repeatable), e.g. "
                           "--prior-setting p_step=0.3 --prior-setting step_width_range=[0.05,0.3]")
        elif f.name == "budget":
            p.add_argument(flag, type=int, default=None, metavar="EPOCHS",
                           help="train for runs of this many epochs (<= --seq-len): the prior's progress-tied "
                           "components end there and the model's native length becomes EPOCHS (default: --seq-len)")
        elif f.name == "init_from":
            p.add_argument(flag, default=None, metavar="DIR",
                           help="start from this checkpoint's (a directory, or a shipped model name such as "
                           "'default') weights and bin borders (same architecture; "
                           "fresh optimizer and schedule)")
        else:
            p.add_argument(flag, type=type(default), default=default, help=f"(default: {default})")
    p.set_defaults(func=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from lcpfn.train import TrainConfig, train

    values = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if f.name != "out_dir"}
    values["prior_settings"] = _prior_settings(args.prior_settings)
    if args.curves is not None:
        if args.curves < values["batch_size"]:
            raise LCPFNError(f"--curves must be at least --batch-size ({values['batch_size']}) but got {args.curves}")
        values["steps"] = args.curves // values["batch_size"]
    config = TrainConfig(out_dir=args.out_dir, **values)
    limit = None if args.time_limit is None else 60.0 * args.time_limit
    result = train(config, resume=args.resume, time_limit_s=limit, progress=not args.no_progress)
    state = "finished" if result.finished else "stopped (resume with --resume)"
    print(
        f"{state} at step {result.step}/{config.steps}: {result.curves_seen} curves in "
        f"{result.wall_time_s / 60:.1f} min ({result.curves_seen / max(result.wall_time_s, 1e-9):.0f} curves/s), "
        f"loss {result.loss:.4f}; checkpoint in {result.out_dir}"
    )
    return 0


def _prior_settings(items: list[str] | None) -> dict[str, object] | None:
    """``["p_step=0.3", "step_width_range=[0.05, 0.3]"]`` -> ``{"p_step": 0.3, ...}`` (values in JSON)."""
    if not items:
        return None
    settings: dict[str, object] = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise LCPFNError(f"--prior-setting takes NAME=VALUE but got {item!r}")
        try:
            settings[name.strip()] = json.loads(text)
        except json.JSONDecodeError:
            raise LCPFNError(
                f"--prior-setting {name.strip()}: VALUE must be JSON (a number, true/false, [a, b]) but got {text!r}"
            ) from None
    return settings


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="forecast a learning curve from a CSV file",
        description="Forecast the rest of a learning curve. FILE is a CSV with one column of values, two "
        "columns (epoch,value) or several curves side by side (one column each); a header row is optional.",
    )
    p.add_argument("file", help="CSV file with the observed curve(s)")
    p.add_argument("--max-epochs", type=int, required=True, help="the epoch to forecast up to")
    p.add_argument("--model", default="default", help="shipped model name or checkpoint directory")
    p.add_argument("--direction", choices=["maximize", "minimize"], default="maximize")
    p.add_argument("--bounds", nargs=2, metavar=("LOW", "HIGH"), default=None,
                   help="the metric's range; 'none' for a side that is not known (e.g. '0 none' for a loss; "
                   "'none none' infers both from each curve's observed values)")
    p.add_argument("--quantiles", type=float, nargs="+", default=[0.05, 0.25, 0.5, 0.75, 0.95])
    p.add_argument("--every", type=int, default=None, help="print every N-th epoch (default: about 10 rows)")
    p.add_argument("--target", type=float, default=None, help="also print P(final value better than TARGET)")
    p.add_argument("--plot", default=None, metavar="OUT.png", help="draw the fan chart to this PNG (needs matplotlib)")
    p.set_defaults(func=_run_predict)


def _run_predict(args: argparse.Namespace) -> int:
    import numpy as np

    from lcpfn.io import read_curves_file
    from lcpfn.predictor import LCPFN

    curve_set = read_curves_file(args.file)
    for note in curve_set.notes:
        print(f"# note: {note}")
    model = LCPFN.from_pretrained(args.model)
    # curves of equal length share one forward pass
    by_length: dict[int, list[int]] = {}
    for i, c in enumerate(curve_set.curves):
        by_length.setdefault(len(c), []).append(i)
    forecasts = []
    for length, idx in by_length.items():
        fc = model.predict(
            np.stack([curve_set.curves[i] for i in idx]),
            max_epochs=args.max_epochs, direction=args.direction, bounds=_parse_bounds(args.bounds),
        )
        forecasts.append((fc, [curve_set.names[i] for i in idx]))
    for fc, names in forecasts:
        _print_forecast(fc, names, args, model.name)
    if args.plot:
        from lcpfn.plotting import plot_forecasts

        plot_forecasts(forecasts, path=args.plot)
        print(f"fan chart written to {args.plot}")
    return 0


def _parse_bounds(words: list[str] | None):
    """``--bounds LOW HIGH`` -> the ``bounds`` argument of ``predict``, which validates it.

    ``none`` -> ``None`` (that side is inferred), numbers -> floats; anything else is passed on
    as given, so ``predict`` names it in its error.
    """
    if words is None:
        return None

    def word(w: str):
        if w.lower() == "none":
            return None
        try:
            return float(w)
        except ValueError:
            return w

    return tuple(word(w) for w in words)


def _print_forecast(fc, names: list[str], args: argparse.Namespace, model_name: str) -> None:
    qs = {q: fc.quantile(q) for q in args.quantiles}
    mean = fc.mean()
    every = args.every or max(1, len(fc.epochs) // 10)
    rows = list(range(0, len(fc.epochs), every))
    if rows[-1] != len(fc.epochs) - 1:
        rows.append(len(fc.epochs) - 1)
    p_improve = fc.prob_improve(args.target) if args.target is not None else None
    for i, name in enumerate(names):
        print(f"# {name}: {fc.observed.shape[1]} observed epochs, forecast to epoch {args.max_epochs} ({model_name})")
        print("epoch  " + "  ".join(f"q{q:<7g}" for q in args.quantiles) + "  mean")
        for h in rows:
            cells = "  ".join(f"{qs[q][i, h]:<8.4f}" for q in args.quantiles)
            print(f"{fc.epochs[h]:<6d} {cells}  {mean[i, h]:.4f}")
        if p_improve is not None:
            word = "below" if args.direction == "minimize" else "above"
            print(f"P(value at epoch {args.max_epochs} {word} {args.target:g}) = {p_improve[i]:.3f}")


def _add_app(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("app", help="start the Streamlit dashboard (needs lcpfn[app])")
    p.add_argument("--port", type=int, default=8501)
    p.add_argument("--address", default="127.0.0.1")
    p.add_argument("--model", default="default", help="model shown first: a shipped name or a checkpoint directory")
    p.add_argument("--example", default=None, help="built-in example curve to open with")
    p.set_defaults(func=_run_app)


def _run_app(args: argparse.Namespace) -> int:
    import importlib.util

    from lcpfn.errors import require

    require("streamlit", extra="app", feature="lcpfn app")
    spec = importlib.util.find_spec("lcpfn.app.streamlit_app")
    if spec is None or spec.origin is None:
        raise LCPFNError("the app is not installed: lcpfn.app.streamlit_app was not found")
    cmd = [
        sys.executable, "-m", "streamlit", "run", spec.origin,
        "--server.address", args.address, "--server.port", str(args.port),
        "--server.headless", "true", "--browser.gatherUsageStats", "false", "--client.toolbarMode", "minimal",
        "--", "--model", args.model, *(["--example", args.example] if args.example else []),
    ]
    # exec, not a child process: a SIGTERM to `lcpfn app` must stop the server too
    os.execv(sys.executable, cmd)
    return 0  # pragma: no cover


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lcpfn", description="Learning-curve extrapolation with PFNs.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_predict(sub)
    _add_app(sub)
    try:
        from lcpfn.evaluate import add_cli as _add_evaluate
    except ImportError:  # the evaluation harness is optional at this stage
        pass
    else:
        _add_evaluate(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except (LCPFNError, MissingDependencyError) as exc:
        print(f"lcpfn {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lcpfn {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr = open(os.devnull, "w")
        return 0


if __name__ == "__main__":
    sys.exit(main())
