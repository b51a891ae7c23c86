"""Peak memory and speed of forecasting many curves, and one very long horizon (issue 19, item 5).

    python benchmarks/forecast_memory.py [--cases predict one-curve stream] [--curves 10000]
        [--stream-curves 1000000] [--git-rev HEAD] [--json OUT.json]

Cases (each run in a fresh process, so its peak is its own):

* ``predict``: ``LCPFN.from_pretrained("default").predict`` on ``--curves`` curves of 20 values
  to ``max_epochs=100``, then ``quantile(0.05)``, ``quantile(0.95)``, ``median()`` and
  ``prob_improve(0.9)``.
* ``one-curve``: one curve of 20 values to ``max_epochs=100,000``; then ``median()``,
  ``quantile(0.95)`` and ``prob_improve(0.9)``.
* ``stream``: ``lcpfn predict curves.npy --max-epochs 100 --out forecasts.csv --every 100`` on
  ``--stream-curves`` curves of 20 values (a ``.npy`` written first; rows at epochs 21 and 100,
  the five default quantiles and the mean), the streaming path end to end.

Reported per case: seconds per step, curves per second, the resident memory once the model is
loaded and the process's peak (``VmHWM`` from ``/proc/self/status``, which counts every page the
process ever had resident, torch's allocator included). Curves are synthetic saturating curves in
``[0, 1]`` with noise, the same for every version (seeded).

``--git-rev REV`` also runs ``predict`` and ``one-curve`` on the package as it is at REV
(``git archive`` unpacked into a temporary directory, the sub-packages pyproject.toml maps from
elsewhere linked into its ``lcpfn/``; git is only read), one after the other with the working
tree's, under the same load. A case whose logits would not fit in the memory available
(``MemAvailable``) is skipped rather than run into the OOM killer.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_PACKAGE_DIRS = {"lcpfn.priors": "priors", "lcpfn.integrations": "integrations", "lcpfn.models": "models",
                 "lcpfn.app": "app"}


# --- the child: one case, one process ---------------------------------------------------------
def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        return int(next(line for line in f if line.startswith(field + ":")).split()[1])


def _mem_available_mb() -> float:
    with open("/proc/meminfo") as f:
        return int(next(line for line in f if line.startswith("MemAvailable:")).split()[1]) / 1024


def _curves(n: int, t: int, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    epochs = np.arange(1, t + 1)
    top, start = rng.uniform(0.6, 0.95, (n, 1)), rng.uniform(0.2, 0.5, (n, 1))
    rate = rng.uniform(2.0, 30.0, (n, 1))
    y = top - (top - start) * np.exp(-epochs / rate) + rng.normal(0, 0.01, (n, t))
    return np.clip(y, 0.0, 1.0)


def child(case: str, args: argparse.Namespace) -> dict:
    if args.tree:
        sys.path.insert(0, args.tree)  # before the editable install's finder
    import torch

    import lcpfn
    from lcpfn import LCPFN

    where = str(Path(lcpfn.__file__).resolve().parent)
    model = LCPFN.from_pretrained("default")
    k = model.model.config.num_bins
    out = {"case": case, "lcpfn": where, "threads": torch.get_num_threads(), "steps": {}}
    steps = out["steps"]

    def timed(name, fn):
        t0 = time.perf_counter()
        result = fn()
        steps[name] = time.perf_counter() - t0
        return result

    if case == "stream":
        from lcpfn.cli import main

        out["curves"] = args.stream_curves
        out["base_mb"] = _status_kb("VmRSS") / 1024
        argv = ["predict", args.npy, "--max-epochs", "100", "--out", args.csv, "--every", "100", "--no-progress"]
        rc = timed("lcpfn predict --out", lambda: main(argv))
        if rc != 0:
            raise SystemExit(f"lcpfn predict exited with {rc}")
        out["curves_per_s"] = args.stream_curves / steps["lcpfn predict --out"]
    else:
        n, max_epochs = (args.curves, 100) if case == "predict" else (1, 100_000)
        curves = _curves(n, 20)
        h = max_epochs - 20
        old_bytes = n * h * k * (4 + 8 + 8)  # logits, then float64 probabilities and their cumsum
        if args.tree and old_bytes / 2**20 > 0.9 * _mem_available_mb():  # the old version keeps all logits
            out["skipped"] = f"needs ~{old_bytes / 2**30:.1f} GB, {_mem_available_mb() / 1024:.1f} GB available"
            return out
        out["curves"] = n
        out["base_mb"] = _status_kb("VmRSS") / 1024
        fc = timed("predict", lambda: model.predict(curves, max_epochs=max_epochs))
        timed("quantile(0.05)" if case == "predict" else "median()", lambda: fc.quantile(0.05 if n > 1 else 0.5))
        timed("quantile(0.95)", lambda: fc.quantile(0.95))
        if case == "predict":
            timed("median()", fc.median)
        timed("prob_improve(0.9)", lambda: fc.prob_improve(0.9))
        out["curves_per_s"] = n / sum(steps.values())
    out["peak_mb"] = _status_kb("VmHWM") / 1024
    return out


# --- the parent -----------------------------------------------------------------------------
def export_rev(rev: str, into: Path) -> Path:
    """``git archive REV`` unpacked into ``into``, importable as ``lcpfn`` from there."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    for package, folder in _PACKAGE_DIRS.items():
        link = into / "lcpfn" / package.split(".", 1)[1]
        if not link.exists() and (into / folder).is_dir():
            link.symlink_to(into / folder, target_is_directory=True)
    return into


def _cpu_model() -> str:
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or platform.machine()
    names = [line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name")]
    return names[0] if names else platform.machine()


def _run_child(case: str, tree: str, args: argparse.Namespace, extra: list[str]) -> dict:
    cmd = [sys.executable, __file__, "--child", case, "--tree", tree, "--curves", str(args.curves),
           "--stream-curves", str(args.stream_curves), *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tempfile.gettempdir())
    if proc.returncode != 0:
        return {"case": case, "error": proc.stderr[-1500:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", nargs="+", default=["predict", "one-curve", "stream"],
                    choices=["predict", "one-curve", "stream"])
    ap.add_argument("--curves", type=int, default=10_000, help="curves of the predict case")
    ap.add_argument("--stream-curves", type=int, default=1_000_000, help="curves of the stream case")
    ap.add_argument("--git-rev", default=None, metavar="REV", help="also run predict and one-curve at REV")
    ap.add_argument("--json", default=None, metavar="OUT.json", help="also write the results here")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--tree", default="", help=argparse.SUPPRESS)
    ap.add_argument("--npy", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--csv", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args)))
        return

    import torch

    load0 = os.getloadavg()
    print(f"# {_cpu_model()}, {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads, Python "
          f"{platform.python_version()}, torch {torch.__version__}, MemAvailable {_mem_available_mb() / 1024:.1f} GB")
    results = []
    with tempfile.TemporaryDirectory(prefix="lcpfn-mem-") as tmp:
        versions = {"working tree": ""}  # "": the lcpfn installed (this checkout)
        if args.git_rev:
            rev = Path(tmp) / "rev"
            rev.mkdir()
            versions[f"git {args.git_rev}"] = str(export_rev(args.git_rev, rev))
        for case in args.cases:
            extra: list[str] = []
            if case == "stream":
                import numpy as np

                npy, csv = Path(tmp) / "curves.npy", Path(tmp) / "forecasts.csv"
                np.save(npy, _curves(args.stream_curves, 20, seed=1))
                extra = ["--npy", str(npy), "--csv", str(csv)]
            for name, tree in versions.items():
                if case == "stream" and name != "working tree":
                    continue  # the streaming path is new
                started = time.time()
                res = {**_run_child(case, tree, args, extra), "version": name,
                       "load": [round(x, 2) for x in os.getloadavg()], "started": started}
                if case == "stream" and "error" not in res:
                    res["csv_mb"] = (Path(tmp) / "forecasts.csv").stat().st_size / 2**20
                results.append(res)
                print(json.dumps(res), flush=True)
    print(f"# load average at start {load0[0]:.1f}, at end {os.getloadavg()[0]:.1f}")
    print("| case | version | curves | steps (s) | curves/s | RSS with model MB | peak RSS MB |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        if "error" in r or "skipped" in r:
            print(f"| {r['case']} | {r['version']} | | {r.get('skipped') or 'failed'} | | | |")
            continue
        steps = ", ".join(f"{k} {v:.1f}" for k, v in r["steps"].items())
        print(f"| {r['case']} | {r['version']} | {r['curves']:,} | {steps} | {r['curves_per_s']:.0f} | "
              f"{r['base_mb']:.0f} | {r['peak_mb']:.0f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
