"""Load test of ``lcpfn serve`` on loopback: throughput and latency with 1, 8 and 64 concurrent clients.

    python benchmarks/server_load.py [--model default] [--seconds 10] [--clients 1 8 64] [--threads 1]

Starts ``lcpfn serve --port 0`` in a subprocess, then, for each number of clients, runs that many
asyncio clients (one keep-alive connection each) that each send one curve per request, back to
back, for ``--seconds`` (after ``--warmup`` seconds not counted), at most ``--max-requests``
requests per level. The clients speak HTTP/1.1 on asyncio streams (``--http-client raw``, cheap)
or through ``httpx.AsyncClient`` (``--http-client httpx``, about as costly per request as the
server). Reports req/s, p50/p99 latency, the mean curves per forward pass (from ``/healthz``),
5xx answers and lost requests (sent but never answered, or answered without its forecast). Then
stops the server and times the same work in-process, ``predict`` on a batch of curves plus the
same quantiles, mean and target probability, to compare the server's cost per curve under load
with a batched ``predict``'s. The load clients run on the same machine as the server.

Curves: 256 reference-prior curves (seed 0) clipped to [0, 1], each cut after 5..30 epochs,
forecast to ``--max-epochs`` with the default quantiles and one target.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TARGET = 0.8


def make_curves(n: int, seed: int = 0) -> list[list[float]]:
    import torch

    from lcpfn.priors import ReferencePrior

    values = ReferencePrior().sample(n, generator=torch.Generator().manual_seed(seed)).values.numpy()
    lengths = np.random.default_rng(seed).integers(5, 31, n)
    return [np.clip(values[i, : lengths[i]], 0.0, 1.0).tolist() for i in range(n)]


@dataclass
class Level:
    clients: int
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    sent: int = 0
    lost: int = 0
    passes: int = 0
    curves: int = 0

    @property
    def answered(self) -> int:
        return sum(self.statuses.values())

    @property
    def server_errors(self) -> int:
        return sum(n for code, n in self.statuses.items() if code >= 500)


class RawConnection:
    """A minimal HTTP/1.1 keep-alive client on one asyncio connection: pre-encoded requests, the
    response read by its Content-Length. Costs the load generator far less CPU per request than
    httpx, so that on a small machine the server, not the client, is what is measured."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, request: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(request)
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        return status, await self.reader.readexactly(length)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def encode(host: str, port: int, body: dict) -> bytes:
    data = json.dumps(body).encode()
    return (f"POST /v1/forecast HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n").encode() + data


async def run_level(url: str, curves: list[list[float]], *, clients: int, warmup: float, seconds: float,
                    max_requests: int, max_epochs: int, http_client: str = "raw") -> Level:
    import httpx

    host, port = url.removeprefix("http://").rsplit(":", 1)
    requests = [encode(host, int(port), {"curves": [c], "max_epochs": max_epochs, "targets": [TARGET]})
                for c in curves]

    level = Level(clients)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        async def health() -> dict:
            return (await http.get("/healthz")).json()

        async def client(k: int, until: float, record: bool) -> None:
            i = k
            raw = RawConnection(host, int(port))
            try:
                while time.perf_counter() < until and (not record or level.sent < max_requests):
                    n = i % len(curves)
                    i += clients
                    if record:
                        level.sent += 1
                    t0 = time.perf_counter()
                    try:
                        if http_client == "raw":
                            status, body = await raw.post(requests[n])
                        else:
                            r = await http.post("/v1/forecast", json={
                                "curves": [curves[n]], "max_epochs": max_epochs, "targets": [TARGET]})
                            status, body = r.status_code, r.content
                    except (httpx.HTTPError, OSError, asyncio.IncompleteReadError):
                        if record:
                            level.lost += 1
                        await raw.close()
                        continue
                    if record:
                        level.latencies.append(time.perf_counter() - t0)
                        level.statuses[status] = level.statuses.get(status, 0) + 1
                        # an answer without exactly this request's one forecast counts as lost
                        if status == 200 and body.count(b'"observed_epochs":%d,' % len(curves[n])) != 1:
                            level.lost += 1
            finally:
                await raw.close()

        if warmup > 0:
            await asyncio.gather(*(client(k, time.perf_counter() + warmup, False) for k in range(clients)))
        before = await health()
        t0 = time.perf_counter()
        await asyncio.gather(*(client(k, t0 + seconds, True) for k in range(clients)))
        level.seconds = time.perf_counter() - t0
        after = await health()
        level.passes = after["forward_passes"] - before["forward_passes"]
        level.curves = after["curves"] - before["curves"]
    return level


def start_server(args: argparse.Namespace) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "lcpfn.cli", "serve", "--model", args.model, "--port", "0",
           "--log-level", "warning", "--threads", str(args.threads)]
    if args.max_wait_ms is not None:
        cmd += ["--max-wait-ms", str(args.max_wait_ms)]
    env = {k: v for k, v in os.environ.items() if k != "LCPFN_API_TOKEN"}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("lcpfn serve: "):
        proc.kill()
        raise SystemExit(f"the server did not start: {line!r}")
    return proc, line.split(" at ")[1].split()[0]


def in_process_cost(args: argparse.Namespace, curves: list[list[float]], sizes: list[int]) -> dict[int, float]:
    """Median seconds per curve of ``predict`` + the server's extraction, per batch size."""
    import torch

    from lcpfn import LCPFN

    torch.set_num_threads(args.threads)
    model = LCPFN.from_pretrained(args.model)
    out = {}
    for n in sizes:
        times = []
        deadline = time.perf_counter() + args.seconds
        k = 0
        while (time.perf_counter() < deadline or len(times) < 3) and len(times) < 200:
            batch = [np.asarray(curves[(k + j) % len(curves)]) for j in range(n)]
            k += n
            t0 = time.perf_counter()
            fc = model.predict(batch, max_epochs=args.max_epochs)
            for q in (0.05, 0.25, 0.5, 0.75, 0.95):
                fc.quantile(q)
            fc.mean()
            fc.prob_improve(TARGET)
            times.append(time.perf_counter() - t0)
        out[n] = statistics.median(times) / n
    return out


def cpu_model() -> str:
    try:
        lines = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout.splitlines()
        return next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("Model name")), platform.machine())
    except (OSError, subprocess.SubprocessError):
        return platform.machine()


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default")
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 8, 64])
    ap.add_argument("--seconds", type=float, default=10.0, help="measured seconds per level")
    ap.add_argument("--warmup", type=float, default=2.0, help="seconds of load before each level's measurement")
    ap.add_argument("--max-requests", type=int, default=20_000, help="most requests measured per level")
    ap.add_argument("--max-epochs", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1, help="torch threads, of the server and the in-process run")
    ap.add_argument("--max-wait-ms", type=float, default=None, help="the server's --max-wait-ms (default: its own)")
    ap.add_argument("--http-client", choices=["raw", "httpx"], default="raw",
                    help="the load clients' HTTP: a minimal keep-alive client on asyncio streams (default; cheap, "
                    "so the server is what is measured) or httpx.AsyncClient")
    args = ap.parse_args()

    curves = make_curves(256)
    load_start = os.getloadavg()
    proc, url = start_server(args)
    try:
        levels = [asyncio.run(run_level(url, curves, clients=c, warmup=args.warmup, seconds=args.seconds,
                                        max_requests=args.max_requests, max_epochs=args.max_epochs,
                                        http_client=args.http_client))
                  for c in args.clients]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    load_mid = os.getloadavg()
    busiest = max(levels, key=lambda lv: lv.clients)
    per_pass = round(busiest.curves / max(busiest.passes, 1))
    sizes = sorted({1, max(1, per_pass), 64})
    cost = in_process_cost(args, curves, sizes)
    load_end = os.getloadavg()

    import torch

    print(f"model={args.model}, max_epochs={args.max_epochs}, torch {torch.__version__}, threads={args.threads}, "
          f"cpu={cpu_model()} x{os.cpu_count()}, python {platform.python_version()}")
    print(f"load average (1/5/15 min): start {load_start[0]:.1f}/{load_start[1]:.1f}/{load_start[2]:.1f}, "
          f"after the load test {load_mid[0]:.1f}/{load_mid[1]:.1f}/{load_mid[2]:.1f}, "
          f"end {load_end[0]:.1f}/{load_end[1]:.1f}/{load_end[2]:.1f}")
    print()
    print("| clients | requests | req/s | p50 ms | p99 ms | curves / forward pass | 5xx | lost |")
    print("|---|---|---|---|---|---|---|---|")
    for lv in levels:
        rate = lv.answered / lv.seconds
        print(f"| {lv.clients} | {lv.answered} | {rate:.1f} | {1e3 * pct(lv.latencies, 50):.1f} | "
              f"{1e3 * pct(lv.latencies, 99):.1f} | {lv.curves / max(lv.passes, 1):.1f} | {lv.server_errors} | "
              f"{lv.lost} |")
    print()
    print("| in-process `predict` + the same quantiles, mean, P(target): batch of | ms / curve |")
    print("|---|---|")
    for n in sizes:
        print(f"| {n} | {1e3 * cost[n]:.2f} |")
    print()
    one = min(levels, key=lambda lv: lv.clients)
    ratio = (busiest.answered / busiest.seconds) / max(one.answered / one.seconds, 1e-9)
    server_cost = busiest.seconds / max(busiest.answered, 1)
    print(f"- {busiest.clients} vs {one.clients} clients: {ratio:.2f}x the req/s (goal >= 5x)")
    print(f"- per curve at {busiest.clients} clients: {1e3 * server_cost:.2f} ms (1 / req/s) vs "
          f"{1e3 * cost[per_pass]:.2f} ms in-process at the server's mean batch ({per_pass} curves): "
          f"{server_cost / cost[per_pass]:.2f}x; vs batch 64: {server_cost / cost[64]:.2f}x (goal <= 2x)")
    print(f"- 5xx: {sum(lv.server_errors for lv in levels)}, lost: {sum(lv.lost for lv in levels)}, "
          f"other statuses: {json.dumps({c: n for lv in levels for c, n in lv.statuses.items() if c != 200})}")


if __name__ == "__main__":
    main()
