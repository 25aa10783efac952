"""Switchboard's side of the jobs benchmark: the jobs service and one worker process, driven over gRPC.

Jobs are `diagnostics.echo` on the `analytics` queue, submitted with `SubmitJob`. A job's start is the
`started_at` its worker's claim wrote (Redis server time, whole milliseconds); completion is counted on
the queue's COMPLETED index, and each phase ends with `CleanQueue` so retention never removes a job
that is still being counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import grpc
from google.protobuf import struct_pb2
from redis.asyncio import Redis

from bench.measure import (
    DrainResult,
    LatencyResult,
    LatencySummary,
    SustainedResult,
    costs_per_job,
    gather_bounded,
    read_counters,
    send_paced,
    wait_until,
)
from devstack.processes import ManagedProcess
from devstack.services import ServiceProcess
from devstack.workers import WorkerProcess
from services.jobs.keys import QueueKeys
from switchboard.jobs.v1 import jobs_pb2, jobs_pb2_grpc

logger = logging.getLogger(__name__)

QUEUE = "analytics"
TASK = "diagnostics.echo"
WORKER_CONCURRENCY = 100
# The stored settings document the worker reads at startup (what the admin API would write).
POLICIES = {"version": 1, "queue_policies": {QUEUE: {"concurrency": WORKER_CONCURRENCY}}}
SUBMIT_CONCURRENCY = 100
WARM_UP_JOBS = 20
READ_CHUNK = 1000


class SwitchboardPeer:
    name = "Switchboard"

    def __init__(
        self,
        stub: jobs_pb2_grpc.JobsServiceStub,
        redis: Redis,
        *,
        prefix: str,
        processes: dict[str, int],
        watched: Sequence[ManagedProcess],
        phase_timeout: float,
    ) -> None:
        self._stub = stub
        self._redis = redis
        self._prefix = prefix
        self.processes = processes
        self._watched = tuple(watched)
        self._phase_timeout = phase_timeout
        payload = struct_pb2.Struct()
        payload.update({"bench": 1})
        self._request = jobs_pb2.SubmitJobRequest(queue=QUEUE, task=TASK, payload=payload)

    @property
    def _completed_key(self) -> str:
        return QueueKeys(self._prefix, QUEUE).state_index("completed")

    async def _submit(self) -> str:
        job = await self._stub.SubmitJob(self._request)
        job_id: str = job.id
        return job_id

    async def _completed(self) -> int:
        return int(await self._redis.zcard(self._completed_key))

    async def _wait_completed(self, count: int, what: str) -> float:
        async def done() -> bool:
            for process in self._watched:
                if not process.running:
                    raise RuntimeError(f"{process.name} exited:\n{process.log_tail()}")
            return await self._completed() >= count

        return await wait_until(done, within=self._phase_timeout, what=what)

    async def _clean(self) -> None:
        await self._stub.CleanQueue(
            jobs_pb2.CleanQueueRequest(name=QUEUE, state=jobs_pb2.JOB_STATE_COMPLETED, older_than_seconds=0)
        )

    async def warm_up(self) -> None:
        """Runs a few jobs end to end: the worker is up, connected and has imported everything."""
        baseline = await self._completed()
        await gather_bounded(WARM_UP_JOBS, WARM_UP_JOBS, lambda _: self._submit())
        await self._wait_completed(baseline + WARM_UP_JOBS, "Switchboard warm-up jobs")
        await self._clean()

    async def drain(self, jobs: int) -> DrainResult:
        """Pauses the queue, submits `jobs`, resumes it and times until every one has completed."""
        await self._stub.PauseQueue(jobs_pb2.PauseQueueRequest(name=QUEUE))
        try:
            await gather_bounded(jobs, SUBMIT_CONCURRENCY, lambda _: self._submit())
            queues = await self._stub.ListQueues(jobs_pb2.ListQueuesRequest())
            waiting = next(queue.counts.waiting for queue in queues.queues if queue.name == QUEUE)
            if waiting != jobs:
                raise RuntimeError(f"expected {jobs} waiting jobs before the drain, found {waiting}")
            baseline = await self._completed()
            before = await read_counters(self._redis, self.processes)
            resumed_at = time.time()
        finally:
            await self._stub.ResumeQueue(jobs_pb2.ResumeQueueRequest(name=QUEUE))
        finished_at = await self._wait_completed(baseline + jobs, "Switchboard drain")
        after = await read_counters(self._redis, self.processes)
        await self._clean()
        return DrainResult(
            jobs=jobs, seconds=finished_at - resumed_at, costs=costs_per_job(before, after, jobs)
        )

    async def paced(self, rate: float, seconds: float) -> LatencyResult:
        count = max(2, round(rate * seconds))
        baseline = await self._completed()
        before = await read_counters(self._redis, self.processes)
        run = await send_paced(rate, count, self._submit)
        await self._wait_completed(baseline + count, f"Switchboard jobs at {rate:g}/s")
        after = await read_counters(self._redis, self.processes)
        created_and_started = await self._created_and_started_ms([call.value for call in run.calls])
        await self._clean()
        submitted_ms = [call.submitted_at * 1000 for call in run.calls]
        waits = [started - sent for sent, (_, started) in zip(submitted_ms, created_and_started, strict=True)]
        ingress = [
            created - sent for sent, (created, _) in zip(submitted_ms, created_and_started, strict=True)
        ]
        queued = [started - created for created, started in created_and_started]
        return LatencyResult(
            offered_rate=rate,
            achieved_rate=run.achieved_rate,
            max_lateness_ms=run.max_lateness_ms,
            enqueue_to_start=LatencySummary.of(waits),
            enqueue_call=LatencySummary.of([call.call_ms for call in run.calls]),
            costs=costs_per_job(before, after, count),
            stages={
                "submit→created (API hop, Redis time)": LatencySummary.of(ingress),
                "created→started (in the queue)": LatencySummary.of(queued),
            },
        )

    async def sustained(self, jobs: int, keep: int) -> SustainedResult:
        """`jobs` submitted as fast as the API takes them while the worker runs them, with retention
        keeping `keep` completed jobs: throughput, the completed set's peak, and Redis memory."""
        policies = {
            "version": 2,
            "queue_policies": {
                QUEUE: {
                    "concurrency": WORKER_CONCURRENCY,
                    "remove_on_complete": {"count": keep, "age_seconds": 0},
                }
            },
        }
        await self._redis.set(f"{self._prefix}:settings", json.dumps(policies))  # fmt: skip
        await asyncio.sleep(2)  # the worker re-reads its settings every second
        baseline_memory = int((await self._redis.info("memory"))["used_memory"])
        peak_completed = 0
        peak_memory = baseline_memory
        sampling = True

        async def sample() -> None:
            nonlocal peak_completed, peak_memory
            while sampling:
                peak_completed = max(peak_completed, await self._completed())
                peak_memory = max(peak_memory, int((await self._redis.info("memory"))["used_memory"]))
                await asyncio.sleep(0.1)

        sampler = asyncio.create_task(sample())
        started = time.time()
        try:
            await gather_bounded(jobs, SUBMIT_CONCURRENCY, lambda _: self._submit())
            finished = await wait_until(self._drained, within=self._phase_timeout, what="sustained drain")
        finally:
            sampling = False
            await sampler
        # Retention's next tick, then memory as it settles.
        await asyncio.sleep(2)
        settled_completed = await self._completed()
        settled_memory = int((await self._redis.info("memory"))["used_memory"])
        await self._redis.set(f"{self._prefix}:settings", json.dumps({**POLICIES, "version": 3}))
        await self._clean()
        return SustainedResult(
            jobs=jobs,
            seconds=finished - started,
            keep=keep,
            peak_completed=peak_completed,
            settled_completed=settled_completed,
            baseline_memory=baseline_memory,
            peak_memory=peak_memory,
            settled_memory=settled_memory,
        )

    async def _drained(self) -> bool:
        for process in self._watched:
            if not process.running:
                raise RuntimeError(f"{process.name} exited:\n{process.log_tail()}")
        keys = QueueKeys(self._prefix, QUEUE)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zcard(keys.named("wait"))
            pipe.zcard(keys.named("active"))
            waiting, active = await pipe.execute()
        return int(waiting) + int(active) == 0

    async def _created_and_started_ms(self, job_ids: Sequence[str]) -> list[tuple[int, int]]:
        """Per job, when the submit script and the claim script ran (Redis server time, whole ms)."""
        rows: list[list[bytes | None]] = []
        for start in range(0, len(job_ids), READ_CHUNK):
            async with self._redis.pipeline(transaction=False) as pipe:
                for job_id in job_ids[start : start + READ_CHUNK]:
                    pipe.hmget(QueueKeys(self._prefix, QUEUE).job(job_id), ["created_at", "started_at"])
                rows.extend(await pipe.execute())
        times = [(int(created), int(started)) for created, started in rows if created and started]
        if len(times) != len(job_ids):
            raise RuntimeError(f"{len(job_ids) - len(times)} jobs have no created_at or started_at")
        return times


def _worker_capacity(log_path: Path) -> int | None:
    """The capacity the worker reported at startup, from its JSON log."""
    for line in log_path.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict) and record.get("message") == "worker started":
                return int(record["capacity"])
    return None


@contextlib.asynccontextmanager
async def running_switchboard(
    redis_port: int, run_dir: Path, *, phase_timeout: float
) -> AsyncIterator[SwitchboardPeer]:
    """The jobs service and one worker on `redis_port`, under a key prefix of their own, warmed up."""
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    env = {"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(redis_port), "JOBS_KEY_PREFIX": prefix}
    redis = Redis(host="127.0.0.1", port=redis_port)
    service = ServiceProcess("jobs", run_dir=run_dir, env=env, port=0)
    worker = WorkerProcess("jobs-worker", run_dir=run_dir, env=env, queues=(QUEUE,))
    try:
        # Before the worker starts: it sizes its receiver from the policies it reads at startup.
        await redis.set(f"{prefix}:settings", json.dumps(POLICIES))
        # Processes are started from the main thread: their parent-death signal follows the forking thread.
        service.start()
        await asyncio.to_thread(service.wait_ready)
        worker.start()
        async with grpc.aio.insecure_channel(service.address) as channel:
            peer = SwitchboardPeer(
                jobs_pb2_grpc.JobsServiceStub(channel),
                redis,
                prefix=prefix,
                processes={"worker": worker.pid, "service": service.process.pid, "client": os.getpid()},
                watched=(worker.process, service.process),
                phase_timeout=phase_timeout,
            )
            await peer.warm_up()
            capacity = _worker_capacity(worker.process.log_path)
            if capacity != WORKER_CONCURRENCY:
                raise RuntimeError(f"the worker runs {capacity} jobs at once, not {WORKER_CONCURRENCY}")
            logger.info(
                "Switchboard ready: service %s, worker pid %s, prefix %s", service.address, worker.pid, prefix
            )
            yield peer
    finally:
        await asyncio.to_thread(worker.stop)
        await asyncio.to_thread(service.stop)
        await redis.aclose()
