"""Time of ``lcpfn.io.read_csv`` on pathological and maximal files, before and after a change.

    python benchmarks/csv_reader.py [--repeats 5] [--git-rev HEAD] [--cap 120] [--budget 30]

Both versions run in this one process: "before" is ``lcpfn/io.py`` as it is at ``--git-rev``
(``git show REV:lcpfn/io.py`` written to a temporary file and imported as its own module; it
imports the rest of ``lcpfn`` from the working tree), "after" is the working tree's
``lcpfn.io``. "after, limits lifted" is the working tree's reader with ``MAX_COLUMNS`` and
``MAX_CURVES`` raised to a million, so that it parses the whole file instead of refusing its
header: the cost of the algorithm itself, not of an early error.

Every (file, version) is read ``--repeats`` times, or fewer when the runs so far took more than
``--budget`` seconds together, and the median is reported. One read that takes longer than
``--cap`` seconds is stopped (``SIGALRM``) and reported as "> cap". Git is only read.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]


def files() -> dict[str, bytes]:
    """The inputs, by description."""
    out: dict[str, bytes] = {}
    # The file: 2,000 identical header cells, three rows of values, 20 KB.
    out["2,000 identical header cells (20 KB)"] = ",".join(["acc"] * 2000).encode() + b"\n" + (
        ",".join(["0"] * 2000).encode() + b"\n"
    ) * 3
    # 100k header columns (identical names: the worst case for making names unique), one value.
    out["100,000 identical header cells (400 KB)"] = ",".join(["acc"] * 100_000).encode() + b"\n0.5\n"
    out["100,000 distinct header cells (690 KB)"] = (
        ",".join(f"c{j}" for j in range(100_000)).encode() + b"\n0.5\n"
    )
    # Two lines that end in 10,000 delimiters each (the trailing-delimiter strip).
    out["2 lines of 10,000 trailing commas (20 KB)"] = (b"0.5" + b"," * 10_000 + b"\n") * 2
    # The largest file read: an epoch column and 50 curves, just under MAX_BYTES.
    header = "epoch," + ",".join(f"run_{k}" for k in range(50)) + "\n"
    row_len = len(f"{8999}," + ",".join(["0.123456789"] * 50) + "\n")
    rows = (5_000_000 - len(header)) // row_len
    out[f"5 MB: epoch + 50 curves x {rows:,} epochs"] = (
        header + "".join(f"{e}," + ",".join(f"{0.5 + 1e-9 * (e * k % 997):.9f}" for k in range(50)) + "\n"
                         for e in range(1, rows + 1))
    ).encode()
    return out


def load_rev(rev: str, into: Path) -> ModuleType:
    """``lcpfn/io.py`` as it is at ``rev``, imported from ``into`` as module ``lcpfn_io_<rev>``."""
    source = subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:lcpfn/io.py"], check=True,
                            capture_output=True).stdout
    path = into / "io_before.py"
    path.write_bytes(source)
    spec = importlib.util.spec_from_file_location("lcpfn_io_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


class _Timeout(Exception):
    pass


@contextlib.contextmanager
def _cap(seconds: float) -> Iterator[None]:
    def stop(signum, frame):
        raise _Timeout

    before = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, before)


def _outcome(read: Callable[[bytes], object], data: bytes, errors: tuple[type[BaseException], ...]) -> str:
    try:
        cs = read(data)
    except errors as exc:
        return f"{type(exc).__name__}: {str(exc)[:70]}"
    return f"{cs.n_curves} curves"  # type: ignore[attr-defined]


def time_reads(read: Callable[[bytes], object], data: bytes, *, repeats: int, cap: float, budget: float,
               errors: tuple[type[BaseException], ...]) -> tuple[list[float], str]:
    """Seconds of each read (stopping early past ``budget``) and what the last one returned."""
    times: list[float] = []
    result = ""
    while len(times) < repeats and sum(times) <= budget:
        start = time.perf_counter()
        try:
            with _cap(cap):
                result = _outcome(read, data, errors)
        except _Timeout:
            return [float("inf")], f"stopped after {cap:g} s"
        times.append(time.perf_counter() - start)
    return times, result


def _cpu() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown"
    return next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")), "unknown")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--git-rev", default="HEAD", help="the 'before' version of lcpfn/io.py")
    parser.add_argument("--cap", type=float, default=120.0, help="seconds after which one read is stopped")
    parser.add_argument("--budget", type=float, default=30.0, help="no further repeats past this many seconds")
    parser.add_argument("--only", default=None, help="run only the files whose description contains this")
    args = parser.parse_args(argv)

    import os

    from lcpfn import io as after
    from lcpfn.errors import InputError

    rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", args.git_rev], check=True,
                         capture_output=True, text=True).stdout.strip()
    print(f"machine: {_cpu()}, {os.cpu_count()} CPUs; Python {platform.python_version()}; "
          f"before = lcpfn/io.py at {args.git_rev} ({rev}); after = working tree", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        before = load_rev(args.git_rev, Path(tmp))

        def lifted(data: bytes) -> object:
            saved = after.MAX_COLUMNS, after.MAX_CURVES
            after.MAX_COLUMNS = after.MAX_CURVES = 1_000_000  # type: ignore[misc]
            try:
                return after.read_csv(data)
            finally:
                after.MAX_COLUMNS, after.MAX_CURVES = saved  # type: ignore[misc]

        versions: dict[str, Callable[[bytes], object]] = {
            f"before ({rev})": before.read_csv, "after": after.read_csv, "after, limits lifted": lifted,
        }
        print("\n| file | bytes | version | runs | median s | result |\n|---|---|---|---|---|---|")
        for name, data in files().items():
            if args.only and args.only not in name:
                continue
            for version, read in versions.items():
                times, result = time_reads(read, data, repeats=args.repeats, cap=args.cap, budget=args.budget,
                                           errors=(InputError,))
                median = statistics.median(times)
                shown = f"> {args.cap:g}" if median == float("inf") else f"{median:.4f}"
                print(f"| {name} | {len(data):,} | {version} | {len(times)} | {shown} | {result} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
