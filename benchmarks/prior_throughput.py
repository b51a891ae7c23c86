"""Throughput of the reference prior: our vectorised sampler against the reference package's.

Measures curves per second (length 100) of ``lcpfn.priors.ReferencePrior.sample`` at several
batch sizes and torch thread counts, and of the reference package's per-curve sampler
(``lcpfn`` 0.1.3, ``domhan_prior.sample_from_prior(rng)`` followed by ``curve()``, the way its
training batches call it) in the same process, then prints a markdown table.

The reference package's import name clashes with ours, so its two plain modules (``curves.py``
and ``domhan_prior.py``, which need only numpy and torch) are loaded from its unpacked wheel
under private module names; ``domhan_prior``'s ``from lcpfn.curves import ...`` is served by a
temporary ``sys.modules`` alias that is removed again. Nothing else of the package is imported.

    python benchmarks/prior_throughput.py                      # reference from /tmp/refpkg
    python benchmarks/prior_throughput.py --ref PATH           # unpacked wheel dir or the .whl
    LCPFN_REFERENCE=PATH python benchmarks/prior_throughput.py
    python benchmarks/prior_throughput.py --threads 1 2 --batch-sizes 1000 10000 100000

``--ref`` may be a directory holding ``curves.py`` (or ``lcpfn/curves.py`` or
``src/lcpfn/curves.py``) or a ``lcpfn-0.1.3-py3-none-any.whl`` file (or a directory holding one).
Each figure is the median of ``--repeats`` timed calls after one untimed warm-up call. Besides
wall-clock throughput the table gives curves per second of process CPU time (all threads
summed), which is less sensitive to other processes competing for the cores.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

from lcpfn.priors import ReferencePrior

SEQ_LEN = 100


def _find_reference_sources(ref: Path, tmp: Path) -> Path:
    """The directory holding the reference's ``curves.py`` and ``domhan_prior.py``."""
    for d in (ref, ref / "lcpfn", ref / "src" / "lcpfn"):
        if (d / "curves.py").is_file() and (d / "domhan_prior.py").is_file():
            return d
    wheels = [ref] if ref.is_file() else sorted(ref.glob("lcpfn-*.whl")) if ref.is_dir() else []
    if wheels:
        with zipfile.ZipFile(wheels[-1]) as whl:
            for name in ("curves.py", "domhan_prior.py"):
                (tmp / name).write_bytes(whl.read(f"lcpfn/{name}"))
        return tmp
    raise SystemExit(f"no reference lcpfn sources (curves.py, domhan_prior.py) or wheel found at {ref}")


def _load_module(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_reference_sampler(ref: Path) -> Callable:
    """The reference ``sample_from_prior(rng, seq_len)``, loaded beside our ``lcpfn``."""
    with tempfile.TemporaryDirectory() as tmp:
        src = _find_reference_sources(ref, Path(tmp))
        curves = _load_module("_lcpfn_reference_curves", src / "curves.py")
        alias = "lcpfn.curves"  # what domhan_prior imports; our lcpfn has no such module
        saved = sys.modules.get(alias)
        sys.modules[alias] = curves
        try:
            domhan = _load_module("_lcpfn_reference_domhan_prior", src / "domhan_prior.py")
        finally:
            if saved is None:
                del sys.modules[alias]
            else:
                sys.modules[alias] = saved
    return domhan.sample_from_prior


def _median_seconds(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median wall-clock and process CPU seconds of one ``fn()`` call."""
    fn()  # warm-up
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def bench_ours(batch_size: int, threads: int, repeats: int, device: str) -> tuple[float, float]:
    """Median wall and CPU seconds for one ``sample(batch_size)`` call."""
    torch.set_num_threads(threads)
    prior = ReferencePrior()
    gen = torch.Generator(device).manual_seed(0)

    def run() -> None:
        prior.sample(batch_size, seq_len=SEQ_LEN, generator=gen)
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    return _median_seconds(run, repeats)


def bench_reference(sample_from_prior: Callable, n_curves: int, repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds to draw ``n_curves`` noisy curves with the reference sampler."""
    rng = np.random.RandomState(0)

    def run() -> None:
        for _ in range(n_curves):
            sample_from_prior(rng, seq_len=SEQ_LEN)()

    return _median_seconds(run, repeats)


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", type=Path, default=Path(os.environ.get("LCPFN_REFERENCE", "/tmp/refpkg")))
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--threads", type=int, nargs="+", default=[torch.get_num_threads()])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--ref-curves", type=int, default=3000, help="curves per reference timing")
    parser.add_argument("--ref-repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    sample_from_prior = load_reference_sampler(args.ref)
    print(
        f"machine: {os.cpu_count()} CPUs ({_cpu_name()}), torch {torch.__version__}, numpy {np.__version__}, "
        f"python {platform.python_version()}, device {args.device}, "
        f"load average at start {os.getloadavg()[0]:.2f}"
    )
    ref_s, ref_cpu = bench_reference(sample_from_prior, args.ref_curves, args.ref_repeats)
    ref_rate, ref_cpu_rate = args.ref_curves / ref_s, args.ref_curves / ref_cpu
    print()
    print(
        "| sampler | torch threads | curves per call | median s / call | curves / s | vs reference "
        "| curves / CPU-s | vs reference (CPU) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    print(
        f"| reference lcpfn 0.1.3 (numpy, one curve at a time) | - | {args.ref_curves} | "
        f"{ref_s:.4f} | {ref_rate:,.0f} | 1.0x | {ref_cpu_rate:,.0f} | 1.0x |"
    )
    for threads in args.threads:
        for batch_size in args.batch_sizes:
            s, cpu = bench_ours(batch_size, threads, args.repeats, args.device)
            rate, cpu_rate = batch_size / s, batch_size / cpu
            print(
                f"| ours, ReferencePrior.sample ({args.device}, float32) | {threads} | {batch_size} | "
                f"{s:.4f} | {rate:,.0f} | {rate / ref_rate:.1f}x | "
                f"{cpu_rate:,.0f} | {cpu_rate / ref_cpu_rate:.1f}x |"
            )
    print(f"\nmedian of {args.repeats} calls (reference: {args.ref_repeats}) after one warm-up call; "
          f"load average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
