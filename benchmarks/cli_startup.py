"""Start-up time of the ``lcpfn`` command: ``lcpfn --help`` and a one-curve ``lcpfn predict``.

    python benchmarks/cli_startup.py [--repeats 7] [--git-rev HEAD]

Every command runs as a fresh process, as the ``lcpfn`` console script does
(``from lcpfn.cli import main; sys.exit(main())``), with its output discarded. Reported: the
median wall time (clock around the child) and the median CPU time (user + system, from
``resource.getrusage(RUSAGE_CHILDREN)`` before and after the child).

``--git-rev REV`` also measures the package as it is at REV: ``git archive REV`` is unpacked into
a temporary directory, the sub-packages that ``pyproject.toml`` maps from elsewhere
(``lcpfn.priors`` from ``priors/`` and so on) are linked into its ``lcpfn/``, and it is run with
that directory first on ``PYTHONPATH``. Its runs alternate with the working tree's, so both are
timed under the same load. Git is only read.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUN_CLI = "import sys; from lcpfn.cli import main; sys.exit(main())"
COMMANDS = {
    "lcpfn --help": ["--help"],
    "lcpfn predict examples/curve.csv --max-epochs 100": [
        "predict", str(REPO / "examples" / "curve.csv"), "--max-epochs", "100",
    ],
}
# pyproject.toml's [tool.setuptools.package-dir] when tomllib (Python 3.11+) cannot read it
_PACKAGE_DIRS = {"lcpfn.priors": "priors", "lcpfn.integrations": "integrations", "lcpfn.models": "models",
                 "lcpfn.app": "app"}


def _package_dirs(tree: Path) -> dict[str, str]:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        return _PACKAGE_DIRS
    with open(tree / "pyproject.toml", "rb") as f:
        mapping = tomllib.load(f).get("tool", {}).get("setuptools", {}).get("package-dir", {})
    return {k: v for k, v in mapping.items() if k.startswith("lcpfn.")} or _PACKAGE_DIRS


def export_rev(rev: str, into: Path) -> Path:
    """``git archive REV`` unpacked into ``into``, importable as ``lcpfn`` from there."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    for package, folder in _package_dirs(into).items():
        link = into / "lcpfn" / package.split(".", 1)[1]
        if not link.exists() and (into / folder).is_dir():
            link.symlink_to(into / folder, target_is_directory=True)
    return into


def timed_run(argv: list[str], env: dict[str, str], cwd: str) -> tuple[float, float]:
    """Wall and CPU seconds of one ``lcpfn ARGV`` process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", RUN_CLI, *argv], env=env, cwd=cwd,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"lcpfn {' '.join(argv)} exited with {proc.returncode}: {proc.stderr[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _cpu_model() -> str:
    """``lscpu``'s model name (the processor's name where there is no lscpu)."""
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or platform.machine()
    names = [line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name")]
    return names[0] if names else platform.machine()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=7, help="runs of every command and version (default: 7)")
    ap.add_argument("--git-rev", default=None, metavar="REV", help="also measure the package at this git revision")
    args = ap.parse_args()

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    versions = {"working tree": env}
    # children start in an empty directory: `python -c` puts the current one first on sys.path
    with tempfile.TemporaryDirectory(prefix="lcpfn-rev-") as tmp, tempfile.TemporaryDirectory() as cwd:
        if args.git_rev:
            tree = export_rev(args.git_rev, Path(tmp))
            versions[f"git {args.git_rev}"] = {**env, "PYTHONPATH": str(tree)}
        for name, version_env in versions.items():  # which lcpfn each version imports
            where = subprocess.run([sys.executable, "-c", "import lcpfn; print(lcpfn.__file__)"], env=version_env,
                                   cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()
            print(f"# {name}: {where}")
        for version_env in versions.values():  # one untimed run each: disk caches warm for all alike
            for argv in COMMANDS.values():
                timed_run(argv, version_env, cwd)
        times: dict[tuple[str, str], list[tuple[float, float]]] = {}
        load = os.getloadavg()[0]
        for _ in range(args.repeats):
            for command, argv in COMMANDS.items():
                for name, version_env in versions.items():
                    times.setdefault((name, command), []).append(timed_run(argv, version_env, cwd))
    torch_version = importlib.metadata.version("torch")
    print(f"# {_cpu_model()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, torch {torch_version}, "
          f"load average {load:.1f} -> {os.getloadavg()[0]:.1f}, {args.repeats} runs each")
    print("| command | version | median wall s | median CPU s |")
    print("|---|---|---|---|")
    for (name, command), runs in times.items():
        wall = statistics.median(w for w, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        print(f"| `{command}` | {name} | {wall:.2f} | {cpu:.2f} |")


if __name__ == "__main__":
    main()
