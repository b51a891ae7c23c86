"""The lcpfn server's micro-batching: a queue of requests and the task that answers them with as
few ``predict`` calls as it can (see :mod:`lcpfn.server`)."""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lcpfn.errors import LCPFNError
from lcpfn.server_models import ForecastModel, ServerConfig, _APIError

log = logging.getLogger("lcpfn.server")


@dataclass(eq=False)
class _Job:
    """One request's work: its curves (trimmed to their lengths) and what to return."""

    model: str
    curves: list[np.ndarray]
    max_epochs: int
    direction: str
    bounds: Any  # as passed to predict: the bounds resolved for this request's values, or None
    quantiles: tuple[float, ...]
    targets: tuple[float, ...]
    future: asyncio.Future
    key: tuple = field(init=False)
    marginals: int = field(init=False)

    def __post_init__(self) -> None:
        bounds_key = "raw" if self.bounds is None else tuple(self.bounds)
        self.key = (self.model, self.max_epochs, self.direction, bounds_key)
        self.marginals = sum(self.max_epochs - len(c) for c in self.curves)


@dataclass
class BatchStats:
    requests: int = 0
    curves: int = 0
    forward_passes: int = 0


class MicroBatcher:
    """Queues requests and answers them with as few ``predict`` calls as it can (see the module
    docstring). ``predict`` and the quantiles run in one worker thread, one batch at a time."""

    def __init__(self, models: Mapping[str, ForecastModel], config: ServerConfig) -> None:
        self.models = models
        self.config = config
        self.stats = BatchStats()
        self._pending: collections.deque[_Job] = collections.deque()
        self._pending_curves = 0
        self._arrived: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._last_batch_jobs = 0
        self._in_round = 0
        self._closing = False

    @property
    def pending(self) -> int:
        """Requests waiting for a batch."""
        return len(self._pending)

    @property
    def in_round(self) -> int:
        """Requests taken from the queue whose batches are running or about to."""
        return self._in_round

    def start(self) -> None:
        self._arrived = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lcpfn-forecast")
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="lcpfn-batcher")

    async def stop(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        while self._pending:
            job = self._pending.popleft()
            if not job.future.done():
                job.future.set_exception(_APIError(503, "the server is shutting down; retry on another one"))
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    async def submit(self, job: _Job) -> list[dict[str, Any]]:
        if self._task is None or self._arrived is None or self._closing:
            raise _APIError(503, "the server is not ready; retry in a moment")
        if self._pending_curves + len(job.curves) > self.config.max_pending_curves:
            raise _APIError(503, f"the server has {self._pending_curves} curves waiting, its limit "
                            f"{self.config.max_pending_curves}; retry later", headers={"Retry-After": "1"})
        self._pending.append(job)
        self._pending_curves += len(job.curves)
        self._arrived.set()
        return await job.future

    async def _loop(self) -> None:
        assert self._arrived is not None
        loop = asyncio.get_running_loop()
        while True:
            await self._arrived.wait()
            self._arrived.clear()
            if not self._pending:
                continue
            if self._last_batch_jobs > 1 and self.config.max_wait_ms > 0:
                await self._wait_for_more(loop.time() + self.config.max_wait_ms / 1000)
            jobs = self._take()
            self._last_batch_jobs = self._in_round = len(jobs)
            for batch in _batches(jobs, self.config):
                await self._run(loop, batch)
                self._in_round -= len(batch)
            if self._pending:
                self._arrived.set()

    async def _wait_for_more(self, deadline: float) -> None:
        """Wait until ``deadline`` or until the queue holds a full batch."""
        assert self._arrived is not None
        loop = asyncio.get_running_loop()
        while self._pending_curves < self.config.max_batch_curves:
            left = deadline - loop.time()
            if left <= 0:
                return
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), left)
            except asyncio.TimeoutError:
                return

    def _take(self) -> list[_Job]:
        """The queued jobs, up to a few batches' worth of curves (the rest wait for the next round)."""
        jobs: list[_Job] = []
        curves = 0
        while self._pending and (not jobs or curves + len(self._pending[0].curves) <= 4 * self.config.max_batch_curves):
            job = self._pending.popleft()
            self._pending_curves -= len(job.curves)
            if not job.future.done():  # a client that went away is not forecast
                jobs.append(job)
                curves += len(job.curves)
        return jobs

    async def _run(self, loop: asyncio.AbstractEventLoop, batch: list[_Job]) -> None:
        try:
            results = await loop.run_in_executor(self._executor, self._compute, batch)
        except Exception as exc:  # a bug, not bad input (that was checked before queueing): a 500
            log.exception("forecasting a batch of %d requests failed", len(batch))
            results = [exc] * len(batch)
        for job, result in zip(batch, results):
            if job.future.done():
                continue
            if isinstance(result, BaseException):
                job.future.set_exception(result)
            else:
                job.future.set_result(result)

    def _compute(self, batch: list[_Job]) -> list[list[dict[str, Any]] | BaseException]:
        """One ``predict`` call for ``batch`` (jobs of one key); runs in the worker thread."""
        first = batch[0]
        curves = [c for job in batch for c in job.curves]
        started = time.perf_counter()
        self.stats.forward_passes += 1
        try:
            fc = self.models[first.model].predict(
                curves, max_epochs=first.max_epochs, direction=first.direction, bounds=first.bounds)
        except LCPFNError as exc:
            if len(batch) == 1:
                return [exc]
            # together they broke a limit none breaks alone: each request on its own
            return [r for job in batch for r in self._compute([job])]
        qs = sorted({q for job in batch for q in job.quantiles} | {0.5})
        targets = sorted({t for job in batch for t in job.targets})
        # the methods over every marginal first, the one-epoch ones last: a forecast keeps the
        # output head's last decoded chunk, which the per-epoch probabilities would replace
        quantile = {q: np.atleast_2d(fc.quantile(q)) for q in qs}
        mean = np.atleast_2d(fc.mean())
        prob = {t: np.atleast_1d(fc.prob_improve(t)) for t in targets}
        bounds = [None if b is None else float(b) for b in fc.bounds]
        first_epoch = int(fc.epochs[0])
        out: list[list[dict[str, Any]] | BaseException] = []
        row = 0
        for job in batch:
            answers = []
            for c in job.curves:
                t = len(c)
                cols = slice(t + 1 - first_epoch, None)
                answers.append({
                    "observed_epochs": t,
                    "epochs": list(range(t + 1, job.max_epochs + 1)),
                    "median": _floats(quantile[0.5][row, cols]),
                    "mean": _floats(mean[row, cols]),
                    "quantiles": [_floats(quantile[q][row, cols]) for q in job.quantiles],
                    "prob_improve": _floats(np.array([prob[tg][row] for tg in job.targets])),
                    "bounds": bounds,
                })
                row += 1
            out.append(answers)
        self.stats.curves += len(curves)
        self.stats.requests += len(batch)
        log.debug("batch: %d requests, %d curves in %.1f ms", len(batch), len(curves),
                  1e3 * (time.perf_counter() - started))
        return out


def _batches(jobs: list[_Job], config: ServerConfig) -> Iterator[list[_Job]]:
    """``jobs`` grouped by key (first come, first grouped) and cut into batches within the caps."""
    groups: dict[tuple, list[_Job]] = {}
    for job in jobs:
        groups.setdefault(job.key, []).append(job)
    for group in groups.values():
        batch: list[_Job] = []
        curves = marginals = 0
        for job in group:
            if batch and (curves + len(job.curves) > config.max_batch_curves
                          or marginals + job.marginals > config.max_batch_marginals):
                yield batch
                batch, curves, marginals = [], 0, 0
            batch.append(job)
            curves += len(job.curves)
            marginals += job.marginals
        if batch:
            yield batch


def _floats(a: np.ndarray) -> list[Any]:
    """A float array as a JSON list (a non-finite value, never expected, as null)."""
    if np.all(np.isfinite(a)):
        return a.tolist()
    log.warning("a forecast held non-finite values; sent as null")
    return [float(v) if math.isfinite(v) else None for v in a.tolist()]
