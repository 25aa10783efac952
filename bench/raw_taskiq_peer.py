"""Raw taskiq's side of the jobs benchmark: the stream broker and result backend, one worker process.

taskiq has no pause, so the drain stops the worker process (SIGSTOP) while the backlog is sent and lets
it go on (SIGCONT) when the clock starts; its consumer group exists from the start, since the producer
declares it before the worker runs (messages added before the group exists are never delivered). A task
is finished once its message is acknowledged, which the worker does after saving the result.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from redis.asyncio import Redis

from bench.measure import (
    DrainResult,
    LatencyResult,
    LatencySummary,
    costs_per_job,
    gather_bounded,
    read_counters,
    send_paced,
    wait_until,
)
from bench.raw_taskiq_app import CONSUMER_GROUP, RawTaskiqApp, build_app
from devstack.processes import ManagedProcess
from devstack.services import REPO_ROOT

logger = logging.getLogger(__name__)

WORKER_CONCURRENCY = 100
SUBMIT_CONCURRENCY = 100
RESULT_READ_CONCURRENCY = 50
WARM_UP_TASKS = 20
DELETE_CHUNK = 1000


class RawTaskiqPeer:
    name = "raw taskiq"

    def __init__(
        self, app: RawTaskiqApp, redis: Redis, worker: ManagedProcess, *, phase_timeout: float
    ) -> None:
        self._app = app
        self._redis = redis
        self._worker = worker
        self.processes = {"worker": worker.pid, "client": os.getpid()}
        self._phase_timeout = phase_timeout

    async def _send(self) -> str:
        handle = await self._app.task.kiq()
        return handle.task_id

    async def _all_acknowledged(self) -> bool:
        if not self._worker.running:
            raise RuntimeError(f"the raw taskiq worker exited:\n{self._worker.log_tail()}")
        stream = await self._redis.xinfo_stream(self._app.stream)
        groups = await self._redis.xinfo_groups(self._app.stream)
        group = next(g for g in groups if g["name"] == CONSUMER_GROUP.encode())
        return bool(group["pending"] == 0 and group["last-delivered-id"] == stream["last-generated-id"])

    async def _wait_acknowledged(self, what: str) -> float:
        return await wait_until(self._all_acknowledged, within=self._phase_timeout, what=what)

    async def _clean(self, task_ids: Sequence[str]) -> None:
        """Drops the finished messages and their results, as `CleanQueue` does on the other side."""
        await self._redis.xtrim(self._app.stream, maxlen=0, approximate=False)
        for start in range(0, len(task_ids), DELETE_CHUNK):
            await self._redis.unlink(
                *(f"{self._app.stream}:{task_id}" for task_id in task_ids[start : start + DELETE_CHUNK])
            )

    async def warm_up(self) -> None:
        """Runs a few tasks end to end: the worker is consuming and has imported everything."""
        task_ids = await gather_bounded(WARM_UP_TASKS, WARM_UP_TASKS, lambda _: self._send())
        await self._wait_acknowledged("raw taskiq warm-up tasks")
        await self._clean(task_ids)

    async def drain(self, jobs: int) -> DrainResult:
        self._worker.signal(signal.SIGSTOP)
        try:
            task_ids = await gather_bounded(jobs, SUBMIT_CONCURRENCY, lambda _: self._send())
            length = await self._redis.xlen(self._app.stream)
            if length != jobs:
                raise RuntimeError(f"expected {jobs} messages in the stream before the drain, found {length}")
            before = await read_counters(self._redis, self.processes)
            resumed_at = time.time()
        finally:
            self._worker.signal(signal.SIGCONT)
        finished_at = await self._wait_acknowledged("raw taskiq drain")
        after = await read_counters(self._redis, self.processes)
        await self._clean(task_ids)
        return DrainResult(
            jobs=jobs, seconds=finished_at - resumed_at, costs=costs_per_job(before, after, jobs)
        )

    async def paced(self, rate: float, seconds: float) -> LatencyResult:
        count = max(2, round(rate * seconds))
        before = await read_counters(self._redis, self.processes)
        run = await send_paced(rate, count, self._send)
        await self._wait_acknowledged(f"raw taskiq tasks at {rate:g}/s")
        after = await read_counters(self._redis, self.processes)
        task_ids = [call.value for call in run.calls]
        started = await self._started_at(task_ids)
        await self._clean(task_ids)
        waits = [(start - call.submitted_at) * 1000 for call, start in zip(run.calls, started, strict=True)]
        return LatencyResult(
            offered_rate=rate,
            achieved_rate=run.achieved_rate,
            max_lateness_ms=run.max_lateness_ms,
            enqueue_to_start=LatencySummary.of(waits),
            enqueue_call=LatencySummary.of([call.call_ms for call in run.calls]),
            costs=costs_per_job(before, after, count),
        )

    async def _started_at(self, task_ids: Sequence[str]) -> list[float]:
        backend = self._app.backend

        async def read(index: int) -> float:
            result = await backend.get_result(task_ids[index])
            if result.is_err:
                raise RuntimeError(f"task {task_ids[index]} failed: {result.error}")
            return result.return_value

        return await gather_bounded(len(task_ids), RESULT_READ_CONCURRENCY, read)


@contextlib.asynccontextmanager
async def running_raw_taskiq(
    redis_port: int, run_dir: Path, *, phase_timeout: float
) -> AsyncIterator[RawTaskiqPeer]:
    """A producer and one worker process on a stream of their own, warmed up."""
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    stream = f"bench-taskiq-{uuid.uuid4().hex[:8]}"
    app = build_app(redis_url, stream)
    redis = Redis(host="127.0.0.1", port=redis_port)
    worker = ManagedProcess(
        "raw-taskiq-worker",
        [
            sys.executable, "-m", "bench.raw_taskiq_app",
            "--redis-url", redis_url,
            "--stream", stream,
            "--max-async-tasks", str(WORKER_CONCURRENCY),
        ],
        log_path=run_dir / "raw-taskiq-worker.log",
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        cwd=REPO_ROOT,
    )  # fmt: skip
    try:
        # Declares the consumer group before anything is sent, so every message is delivered.
        await app.broker.startup()
        worker.start()
        peer = RawTaskiqPeer(app, redis, worker, phase_timeout=phase_timeout)
        await peer.warm_up()
        logger.info("raw taskiq ready: worker pid %s, stream %s", worker.pid, stream)
        yield peer
    finally:
        worker.signal(signal.SIGCONT)
        await asyncio.to_thread(worker.stop, 10.0)
        await app.broker.shutdown()
        await redis.delete(stream)
        await redis.aclose()
