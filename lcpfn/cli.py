"""The ``lcpfn`` command line: ``train``, ``predict``, ``evaluate``, ``app``.

Each subcommand parses its options into a config and calls the library function a user would.
Building the parser and checking the options imports neither torch nor numpy, so ``--help``,
``--version`` and a mistyped option answer at once; a command imports what it needs when it
runs, after its options are checked. Errors name the flags (``--max-epochs``), not the library's
parameters.

Exit status: 0 done, 2 bad options or input, 130 interrupted (Ctrl-C; ``train`` writes a
checkpoint first), 143 ``train`` stopped by SIGTERM after writing a checkpoint (``--resume``
continues it).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any, Literal

from lcpfn import __version__
from lcpfn.config import SESSION_FIELDS, TrainConfig
from lcpfn.errors import LCPFNError, MissingDependencyError
from lcpfn.evaluation.cli import add_cli as _add_evaluate

EXIT_ERROR, EXIT_INTERRUPTED, EXIT_TERMINATED = 2, 130, 143


def _flag(name: str) -> str:
    """The flag of a config field or library parameter: ``max_epochs`` -> ``--max-epochs``."""
    return "--prior-setting" if name == "prior_settings" else "--" + name.replace("_", "-")


def _in_flag_words(names: Iterable[str]) -> Callable[[str], str]:
    """A rewriter of library messages: a parameter in ``names`` that the message names (followed
    by ``=``, ``:``, `` (``, `` '`` or `` must``) becomes its flag."""
    pattern = re.compile(
        r"(?<![\w-])(" + "|".join(sorted(map(re.escape, names), key=len, reverse=True)) + r")(?=[=:]| \(| '| must)"
    )
    return lambda message: pattern.sub(lambda m: _flag(m.group(1)), message)


def _command(sub: argparse._SubParsersAction, name: str, run: Callable[[argparse.Namespace], int], *,
             help: str, description: str | None = None,
             words: Callable[[str], str] | None = None) -> argparse.ArgumentParser:
    """Register subcommand ``name``, run by ``run(args)``; ``words`` rewrites its error messages."""
    p = sub.add_parser(name, help=help, description=description or help)
    p.set_defaults(func=run, words=words)
    return p


# --- train ---------------------------------------------------------------------------------

_TRAIN_HELP = {
    "threads": "torch CPU threads",
    "budget": "train for runs of this many epochs (<= --seq-len): the prior's progress-tied components end "
    "there and the model's native length becomes EPOCHS (default: --seq-len)",
    "init_from": "start from this checkpoint's (a directory, or a shipped model name such as 'default') "
    "weights and bin borders (same architecture; fresh optimizer and schedule)",
}
_TRAIN_METAVAR = {"budget": "EPOCHS", "init_from": "DIR"}


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = _command(
        sub, "train", _run_train, words=_in_flag_words(f.name for f in fields(TrainConfig)),
        help="train a PFN on a curve prior",
        description="Train a PFN on a synthetic curve prior; checkpoints go to OUT_DIR and --resume continues "
        "a run exactly. Run under `torchrun --nproc_per_node N -m lcpfn.cli train ...` for multi-GPU/CPU DDP. "
        "SIGTERM or Ctrl-C stop at the end of the current step with a checkpoint (exit status 143 or 130).",
    )
    p.add_argument("--out-dir", required=True, help="directory for checkpoints (and the final model)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out-dir with the settings it records; give only what this session "
                   "changes (e.g. --time-limit, --threads, --device); a run-defining flag that differs is refused. "
                   "Without a run in --out-dir, starts one")
    p.add_argument("--curves", type=int, default=None, help="train on this many curves (sets --steps)")
    p.add_argument("--time-limit", type=float, default=None, metavar="MINUTES",
                   help="stop this session after MINUTES with a checkpoint (resume later)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    run = p.add_argument_group("the run", "fixed when it starts; --resume reads them from the checkpoint")
    session = p.add_argument_group("this session", "may change when a run is resumed")
    for f in fields(TrainConfig):
        if f.name == "out_dir":
            continue
        group = session if f.name in SESSION_FIELDS else run
        # default=None: a flag that is not given is told apart from one given with the default value
        default = f"(default: {f.default})" if f.default is not None else ""
        kw: dict[str, Any] = {"dest": f.name, "default": None,
                              "help": " ".join(filter(None, [_TRAIN_HELP.get(f.name), default]))}
        if f.name == "prior_settings":
            group.add_argument("--prior-setting", action="append", metavar="NAME=VALUE", **{
                **kw, "help": "change a field of the prior from its default, VALUE in JSON (repeatable), e.g. "
                "--prior-setting p_step=0.3 --prior-setting step_width_range=[0.05,0.3]"})
        elif isinstance(f.default, bool):
            group.add_argument(_flag(f.name), action=argparse.BooleanOptionalAction, **kw)
        elif f.name == "precision":
            group.add_argument(_flag(f.name), choices=["auto", "float32", "bf16"], **kw)
        else:
            kind = int if f.name in ("threads", "budget") else str if f.default is None else type(f.default)
            group.add_argument(_flag(f.name), type=kind, metavar=_TRAIN_METAVAR.get(f.name), **kw)


def _train_config_values(args: argparse.Namespace) -> dict[str, Any]:
    """The run's settings from the flags given, over the recorded run's (``--resume``) or the
    defaults; checked in flag words before anything is loaded."""
    from lcpfn import checkpoint as ckpt  # torch-free until a model is loaded

    given = {f.name: getattr(args, f.name) for f in fields(TrainConfig)
             if f.name != "out_dir" and getattr(args, f.name) is not None}
    if "prior_settings" in given:
        given["prior_settings"] = _prior_settings(given["prior_settings"])
    found = ckpt.read_run_state(args.out_dir)
    if found is not None and not args.resume:
        raise LCPFNError(
            f"--out-dir {args.out_dir} already holds a training run (at step {found[1].get('step')}); "
            "add --resume to continue it, or choose another --out-dir"
        )
    base = TrainConfig.defaults() if found is None else TrainConfig.recorded(found[1].get("config", {}))
    if args.curves is not None:
        batch_size = given.get("batch_size", base["batch_size"])
        if args.curves < batch_size:
            raise LCPFNError(f"--curves must be at least --batch-size ({batch_size}) but got {args.curves}")
        given["steps"] = args.curves // batch_size
    if found is not None:
        changed = [k for k, v in given.items() if k not in SESSION_FIELDS and v != base[k]]
        if changed:
            raise LCPFNError(
                f"cannot resume {args.out_dir} with different settings: "
                + ", ".join(f"{_flag(k)} {given[k]!r} (the run has {base[k]!r})" for k in changed)
                + "; leave them out to continue the run as it was started"
            )
    values = {**base, **given}
    problem = next(TrainConfig.problems(values, name=_flag), None)
    if problem is not None:
        raise LCPFNError(problem)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if values["batch_size"] % world:
        raise LCPFNError(
            f"--batch-size ({values['batch_size']}) must be divisible by the number of processes ({world})"
        )
    return values


def _run_train(args: argparse.Namespace) -> int:
    values = _train_config_values(args)
    from lcpfn.train import train

    config = TrainConfig(out_dir=args.out_dir, **values)
    limit = None if args.time_limit is None else 60.0 * args.time_limit
    result = train(config, resume=args.resume, time_limit_s=limit, progress=not args.no_progress)
    if result.finished:
        state = "finished"
    elif result.stop_reason == "SIGTERM":
        state = "stopped by SIGTERM (resume with --resume)"
    else:
        state = "stopped (resume with --resume)"
    print(
        f"{state} at step {result.step}/{config.steps}: {result.curves_seen} curves in "
        f"{result.wall_time_s / 60:.1f} min ({result.curves_seen / max(result.wall_time_s, 1e-9):.0f} curves/s), "
        f"loss {result.loss:.4f}; checkpoint in {result.out_dir}"
    )
    return EXIT_TERMINATED if result.stop_reason == "SIGTERM" else 0


def _prior_settings(items: list[str]) -> dict[str, object]:
    """``["p_step=0.3", "step_width_range=[0.05, 0.3]"]`` -> ``{"p_step": 0.3, ...}`` (values in JSON)."""
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


# --- predict -------------------------------------------------------------------------------

_BOUNDS_HINTS = (  # the library's wording of bounds -> the flag's
    (re.compile(r"bounds=\(low, high\)"), "--bounds LOW HIGH"),
    (re.compile(r"\(low, None\), \(None, high\) or 'infer'"),
     "--bounds LOW none, --bounds none HIGH or --bounds none none"),
    (re.compile(r"bounds=\(([^,()]+), ([^,()]+)\)"), lambda m: f"--bounds {m[1]} {m[2]}".replace("None", "none")),
)
_predict_params = _in_flag_words(["max_epochs", "bounds", "direction", "chunk_size"])


def _predict_words(message: str) -> str:
    for pattern, replacement in _BOUNDS_HINTS:
        message = pattern.sub(replacement, message)
    return _predict_params(message)


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = _command(
        sub, "predict", _run_predict, words=_predict_words,
        help="forecast learning curves from a CSV or .npy file",
        description="Forecast the rest of learning curves. FILE is a CSV with one column of values, two "
        "columns (epoch,value) or several curves side by side (one column each; a header row is optional, at "
        "most 50 curves), or a .npy file holding a 2-D array with one curve per row, NaN after a curve's end "
        "(np.save('curves.npy', curves) for the (n, T) array predict() takes), read a chunk of rows at a time. "
        "The forecasts are printed as a table per curve, or, with --out, written to a CSV file chunk by chunk "
        "with a progress bar: the way to forecast many curves, in memory that does not grow with their number.",
    )
    p.add_argument("file", help="CSV file with the observed curve(s), or a .npy array of curves (one per row)")
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
    stream = p.add_argument_group(
        "many curves", "--out writes a CSV with one row per curve and reported epoch (the rows --every picks): "
        "curve (the column name, or the row of a .npy file, from 0), epoch, one column per quantile (q0.05, ...), "
        "mean and, with --target, p_above_TARGET (p_below_ for --direction minimize), the probability at that "
        "row's epoch. The file appears when complete (OUT.partial until then)")
    stream.add_argument("--out", default=None, metavar="OUT.csv",
                        help="write the forecasts to this CSV instead of printing them, forecasting FILE chunk "
                        "by chunk")
    stream.add_argument("--chunk-size", type=int, default=None, metavar="N",
                        help="curves per forecast with --out (default: as many as one decoding of the model's output "
                        "holds, about 40 at --max-epochs 100; memory grows with N, speed hardly)")
    stream.add_argument("--no-progress", action="store_true", help="hide the progress bar of --out")


def _parse_bounds(words: list[str] | None) -> tuple[float | None, float | None] | Literal["auto"]:
    """``--bounds LOW HIGH`` -> the ``bounds`` argument of ``predict``; ``none`` -> ``None``;
    no ``--bounds``: ``"auto"``, ``predict``'s default."""
    if words is None:
        return "auto"

    def side(word: str) -> float | None:
        try:
            return None if word.lower() == "none" else float(word)
        except ValueError:
            raise LCPFNError(f"--bounds takes LOW HIGH, each a number or 'none', but got {word!r}") from None

    sides = [side(w) for w in words]
    if not all(v is None or math.isfinite(v) for v in sides):
        raise LCPFNError(
            f"--bounds must be finite numbers ('none' for a side that is not known) but got {' '.join(words)}"
        )
    low, high = sides
    if low is not None and high is not None and not low < high:
        raise LCPFNError(f"--bounds needs LOW < HIGH but got {words[0]} {words[1]}")
    return low, high


def _check_predict(args: argparse.Namespace) -> None:
    """The options of ``predict``, checked before any file is read or model loaded."""
    if args.max_epochs < 2:
        raise LCPFNError(f"--max-epochs must be at least 2 but got {args.max_epochs}")
    bad = [q for q in args.quantiles if not 0 < q < 1]
    if bad:
        raise LCPFNError(f"--quantiles must lie strictly between 0 and 1 but got {bad[0]:g}")
    if args.every is not None and args.every < 1:
        raise LCPFNError(f"--every must be at least 1 but got {args.every}")
    if args.target is not None and not math.isfinite(args.target):
        raise LCPFNError(f"--target must be a finite number but got {args.target}")
    if args.chunk_size is not None and args.out is None:
        raise LCPFNError("--chunk-size applies to --out only (printed forecasts are made in one call)")
    if args.chunk_size is not None and args.chunk_size < 1:
        raise LCPFNError(f"--chunk-size must be at least 1 but got {args.chunk_size}")
    if args.out is not None:
        if args.plot:
            raise LCPFNError("--plot draws printed forecasts; it cannot be combined with --out")
        out = Path(args.out).expanduser()
        if not out.parent.is_dir():
            raise LCPFNError(f"--out {args.out}: directory {str(out.parent)!r} does not exist")
        if out.is_dir():
            raise LCPFNError(f"--out {args.out} is a directory; give a file name such as forecasts.csv")
        if Path(args.file).expanduser().resolve() == out.resolve():
            raise LCPFNError(f"--out {args.out} is FILE itself; choose another file")
    if args.plot:
        from lcpfn.errors import require

        require("matplotlib", extra="plot", feature="--plot")
        parent = Path(args.plot).expanduser().parent
        if not parent.is_dir():
            raise LCPFNError(f"--plot {args.plot}: directory {str(parent)!r} does not exist")


def _run_predict(args: argparse.Namespace) -> int:
    _check_predict(args)
    bounds = _parse_bounds(args.bounds)
    curves, names = _read_predict_input(args)
    from lcpfn.predictor import LCPFN

    model = LCPFN.from_pretrained(args.model)
    if args.out is not None:
        return _stream_forecasts(model, curves, names, args, bounds)
    # one forward pass per length, one forecast for all (the shape rule of lcpfn.validation)
    fc = model.predict(curves, max_epochs=args.max_epochs, direction=args.direction, bounds=bounds)
    names = list(names) if names is not None else [f"row {i}" for i in range(fc.n_curves)]
    _print_forecast(fc, names, args, model.name)
    if args.plot:
        from lcpfn.plotting import plot_forecasts

        plot_forecasts([(fc, names)], path=args.plot)
        print(f"fan chart written to {args.plot}")
    return 0


def _read_predict_input(args: argparse.Namespace):
    """FILE -> (curves, names): a CSV's curves and column names (lcpfn.io), or a .npy file's
    rows read on demand (lcpfn.streaming) and ``None`` (rows are named by their index)."""
    if Path(args.file).suffix.lower() == ".npy":
        from lcpfn.io import MAX_CURVES
        from lcpfn.streaming import open_npy

        rows = open_npy(Path(args.file).expanduser())
        if len(rows) == 0:
            raise LCPFNError(f"{args.file} holds no curves (shape {rows.shape})")
        if args.out is not None:
            return rows, None  # read a chunk at a time
        if len(rows) > MAX_CURVES:
            raise LCPFNError(
                f"{args.file} holds {len(rows)} curves; at most {MAX_CURVES} are printed: write the forecasts to a "
                "file with --out forecasts.csv"
            )
        return rows[0 : len(rows)], None
    from lcpfn.io import read_curves_file

    curve_set = read_curves_file(args.file)
    for note in curve_set.notes:
        print(f"# note: {note}")
    return list(curve_set.curves), list(curve_set.names)


def _report_columns(first, n_epochs: int, every: int | None):
    """The forecast columns reported for curves whose forecast starts at column ``first`` ``(n,)``
    of ``n_epochs``: every ``every``-th (default: about 10) and the last. Returns ``(rows, cols)``,
    index arrays into the ``(n, n_epochs)`` results, curve by curve."""
    import numpy as np

    rows, cols = [], []
    for i, f in enumerate(np.asarray(first, dtype=np.int64).tolist()):
        step = every or max(1, (n_epochs - f) // 10)
        c = list(range(f, n_epochs, step))
        if c[-1] != n_epochs - 1:
            c.append(n_epochs - 1)
        rows.append(np.full(len(c), i))
        cols.append(np.asarray(c))
    return np.concatenate(rows), np.concatenate(cols)


def _stream_forecasts(model, curves, names: list[str] | None, args: argparse.Namespace, bounds) -> int:
    """``--out``: forecast ``curves`` chunk by chunk and write each chunk's rows (see the help)."""
    import csv
    import time

    import numpy as np

    from lcpfn.normalization import describe_bounds

    out = Path(args.out).expanduser()
    partial = out.with_name(out.name + ".partial")
    header = ["curve", "epoch", *(f"q{q:g}" for q in args.quantiles), "mean"]
    if args.target is not None:
        header.append(f"p_{'below' if args.direction == 'minimize' else 'above'}_{args.target:g}")
    n_rows = n_curves = 0
    started = time.perf_counter()
    stream = model.predict_iter(curves, max_epochs=args.max_epochs, direction=args.direction, bounds=bounds,
                                chunk_size=args.chunk_size, progress=not args.no_progress)
    try:
        with open(partial, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            for fc in stream:
                if n_curves == 0:
                    how = "--bounds" if args.bounds else "the default for these values; set it with --bounds"
                    print(f"# values: {describe_bounds(fc.bounds)} ({how})")
                rows, cols = _report_columns(fc.lengths - fc.lengths.min(), len(fc.epochs), args.every)
                table = [np.atleast_2d(fc.quantile(q))[rows, cols] for q in args.quantiles]
                table.append(np.atleast_2d(fc.mean())[rows, cols])
                if args.target is not None:
                    p = np.full(len(rows), np.nan)
                    for c in np.unique(cols):  # one epoch at a time: cheap (a curve's marginal each)
                        at = cols == c
                        p[at] = np.atleast_1d(fc.prob_improve(args.target, epoch=int(fc.epochs[c])))[rows[at]]
                    table.append(p)
                ids = (np.asarray(names, dtype=object)[n_curves + rows] if names is not None else n_curves + rows)
                epochs = fc.epochs[cols]
                values = np.stack(table, axis=1)
                writer.writerows(
                    [cid, int(e), *(f"{v:.8g}" for v in vals)] for cid, e, vals in zip(ids.tolist(), epochs, values)
                )
                n_rows += len(rows)
                n_curves += fc.n_curves
        partial.replace(out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    elapsed = time.perf_counter() - started
    print(f"wrote {n_rows} rows for {n_curves} curves to {args.out} in {elapsed:.1f} s "
          f"({n_curves / max(elapsed, 1e-9):.0f} curves/s, {model.name})")
    return 0


def _print_forecast(fc, names: list[str], args: argparse.Namespace, model_name: str) -> None:
    import numpy as np

    from lcpfn.normalization import describe_bounds

    qs = {q: np.atleast_2d(fc.quantile(q)) for q in args.quantiles}
    mean = np.atleast_2d(fc.mean())
    p_improve = np.atleast_1d(fc.prob_improve(args.target)) if args.target is not None else None
    how = "--bounds" if args.bounds else "the default for these values; set it with --bounds"
    print(f"# values: {describe_bounds(fc.bounds)} ({how})")
    first = fc.lengths - fc.lengths.min()  # each curve's first forecast column
    at, columns = _report_columns(first, len(fc.epochs), args.every)
    for i, name in enumerate(names):
        t = int(fc.lengths[i])
        rows = columns[at == i].tolist()
        print(f"# {name}: {t} observed epochs, forecast to epoch {args.max_epochs} ({model_name})")
        print("epoch  " + "  ".join(f"q{q:<7g}" for q in args.quantiles) + "  mean")
        for h in rows:
            cells = "  ".join(f"{qs[q][i, h]:<8.4f}" for q in args.quantiles)
            print(f"{fc.epochs[h]:<6d} {cells}  {mean[i, h]:.4f}")
        if p_improve is not None:
            word = "below" if args.direction == "minimize" else "above"
            print(f"P(value at epoch {args.max_epochs} {word} {args.target:g}) = {p_improve[i]:.3f}")


# --- app -----------------------------------------------------------------------------------


def _add_app(sub: argparse._SubParsersAction) -> None:
    p = _command(sub, "app", _run_app, help="start the Streamlit dashboard (needs lcpfn[app])")
    p.add_argument("--port", type=int, default=8501)
    p.add_argument("--address", default="127.0.0.1")
    p.add_argument("--model", default="default", help="model shown first: a shipped name or a checkpoint directory")
    p.add_argument("--example", default=None, help="built-in example curve to open with")


def _run_app(args: argparse.Namespace) -> int:
    import importlib.util

    from lcpfn.errors import require
    from lcpfn.io import MAX_BYTES

    require("streamlit", extra="app", feature="lcpfn app")
    spec = importlib.util.find_spec("lcpfn.app.streamlit_app")
    if spec is None or spec.origin is None:
        raise LCPFNError("the app is not installed: lcpfn.app.streamlit_app was not found")
    cmd = [
        sys.executable, "-m", "streamlit", "run", spec.origin,
        "--server.address", args.address, "--server.port", str(args.port),
        "--server.headless", "true", "--browser.gatherUsageStats", "false", "--client.toolbarMode", "minimal",
        # the uploader's stated limit is the one the reader enforces (lcpfn.io.MAX_BYTES), not Streamlit's 200 MB
        "--server.maxUploadSize", str(max(1, MAX_BYTES // 1_000_000)),
        "--", "--model", args.model, *(["--example", args.example] if args.example else []),
    ]
    # exec, not a child process: a SIGTERM to `lcpfn app` must stop the server too
    os.execv(sys.executable, cmd)
    return 0  # pragma: no cover


# --- serve ---------------------------------------------------------------------------------


def _add_serve(sub: argparse._SubParsersAction) -> None:
    p = _command(
        sub, "serve", _run_serve, words=_in_flag_words(["max_wait_ms", "max_batch_curves", "device", "host"]),
        help="serve forecasts over HTTP (needs lcpfn[serve])",
        description="Serve forecasts over HTTP: POST /v1/forecast takes curves and predict's options as JSON, "
        "GET /v1/models lists the models, GET /healthz answers without auth, the API's pages are at /docs. "
        "Concurrent requests are micro-batched into shared forward passes. With the environment variable "
        "LCPFN_API_TOKEN set, /v1/ requests need 'Authorization: Bearer <token>'. Needs "
        "pip install 'lcpfn[serve]'.",
    )
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default: 127.0.0.1, this machine only; 0.0.0.0 for every interface, "
                   "then set LCPFN_API_TOKEN)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on; 0 picks a free one (default: 8000)")
    p.add_argument("--model", action="append", default=None,
                   help="shipped model name or checkpoint directory to serve; repeat to serve several, the first "
                   "is the default (default: default)")
    p.add_argument("--device", default="cpu", help="where the models run (default: cpu)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--max-wait-ms", type=float, default=None,
                   help="how long a batch waits for more requests while the load is concurrent (default: 2)")
    p.add_argument("--max-batch-curves", type=int, default=None, help="most curves per forward pass (default: 256)")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default="info")


def _run_serve(args: argparse.Namespace) -> int:
    from lcpfn.errors import require

    require("fastapi", extra="serve", feature="lcpfn serve")
    require("uvicorn", extra="serve", feature="lcpfn serve")
    names = args.model or ["default"]
    if len(set(names)) != len(names):
        raise LCPFNError(f"--model names a model twice: {' '.join(names)}")
    if not 0 <= args.port <= 65535:
        raise LCPFNError(f"--port must be in 0..65535 but got {args.port}")
    if args.threads is not None and args.threads < 1:
        raise LCPFNError(f"--threads must be at least 1 but got {args.threads}")
    import uvicorn

    from lcpfn.server import TOKEN_ENV, ServerConfig, bind, create_app, url_of

    given = {k: getattr(args, k) for k in ("max_wait_ms", "max_batch_curves") if getattr(args, k) is not None}
    config = ServerConfig(**given)
    import torch

    from lcpfn.predictor import LCPFN

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    models = {name: LCPFN.from_pretrained(name, device=args.device) for name in names}  # errors before binding
    token = os.environ.get(TOKEN_ENV) or None
    if token is None and args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"lcpfn serve: warning: --host {args.host} is reachable from other machines and {TOKEN_ENV} is not "
              "set: anyone who can reach it can use it", file=sys.stderr)
    app = create_app(models, config=config, token=token)
    sock = bind(args.host, args.port)
    url = url_of(sock)
    print(f"lcpfn serve: {', '.join(names)} at {url} (API pages: {url}/docs; auth: "
          f"{'bearer token' if token else 'none'})", flush=True)
    import signal

    server = uvicorn.Server(uvicorn.Config(app, log_level=args.log_level, lifespan="on"))
    # uvicorn stops gracefully on SIGTERM, then raises it again for the handler it found: this one,
    # so that a stop by SIGTERM (how service managers stop a server) ends with status 0
    signal.signal(signal.SIGTERM, lambda signum, frame: setattr(server, "should_exit", True))
    server.run(sockets=[sock])
    print("lcpfn serve: stopped", flush=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lcpfn", description="Learning-curve extrapolation with PFNs.")
    parser.add_argument("--version", action="version", version=f"lcpfn {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_predict(sub)
    _add_app(sub)
    _add_serve(sub)
    _add_evaluate(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``lcpfn ARGV``; returns the exit status (argparse exits itself on bad options)."""
    prog, words = "lcpfn", None
    try:
        args = build_parser().parse_args(argv)
        prog, words = f"lcpfn {args.command}", getattr(args, "words", None)
        logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                            format="%(levelname)s %(name)s: %(message)s")
        return int(args.func(args) or 0)
    except (LCPFNError, MissingDependencyError) as exc:
        message = words(str(exc)) if words and isinstance(exc, LCPFNError) else str(exc)
        print(f"{prog}: error: {message}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:  # also while parsing or importing torch: no traceback
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr = open(os.devnull, "w")
        return 0


if __name__ == "__main__":
    sys.exit(main())
