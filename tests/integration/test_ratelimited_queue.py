"""The `ratelimit` queue starts jobs no faster than its rule, across every worker, and holds when told."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from devstack.redis import RedisServer
from devstack.services import ServiceProcess
from services.jobs.manager import JobManager, SubmitRequest
from services.jobs.model import JobState
from services.jobs.store import JobStore
from tests.integration.conftest import Workers
from tests.polling import eventually


@pytest.fixture
async def ratelimit_service(redis_server: RedisServer, tmp_path: Path) -> AsyncIterator[ServiceProcess]:
    service = ServiceProcess(
        "ratelimit",
        run_dir=tmp_path,
        env={"REDIS_PORT": str(redis_server.port), "RATELIMIT_KEY_PREFIX": f"rl-{uuid.uuid4().hex[:8]}"},
    )
    service.start()
    await asyncio.to_thread(service.wait_ready)
    yield service
    service.stop()


async def test_fifty_jobs_start_at_most_ten_per_second_across_two_workers(
    jobs: JobManager, store: JobStore, workers: Workers, ratelimit_service: ServiceProcess
) -> None:
    for name in ("a", "b"):
        workers.start(name, RATELIMIT_ADDRESS=ratelimit_service.address)
    submitted = [
        await jobs.submit(SubmitRequest(queue="ratelimit", task="diagnostics.echo", payload={"n": index}))
        for index in range(50)
    ]
    done = [
        await eventually(
            lambda job_id=job.id: store.get(job_id),  # type: ignore[misc]
            lambda j: j.state.finished,
            timeout=30,
            what=f"job {job.id} finished",
        )
        for job in submitted
    ]
    assert {job.state for job in done} == {JobState.COMPLETED}, "throttled, never failed"
    assert {job.attempts_made for job in done} == {1}, "a throttled job used no attempt"
    assert {job.worker for job in done} == {""}
    starts = sorted(job.started_at_ms or 0 for job in done)
    busiest = max(sum(1 for s in starts if start <= s < start + 1000) for start in starts)
    assert busiest <= 10, f"{busiest} starts within one second"
    assert (starts[-1] - starts[0]) / 1000 >= 4.5, "50 jobs at 10/s take about 5 s"


async def test_a_task_reporting_an_upstream_429_holds_the_whole_queue(
    jobs: JobManager, store: JobStore, workers: Workers, ratelimit_service: ServiceProcess
) -> None:
    workers.start("a", RATELIMIT_ADDRESS=ratelimit_service.address)
    limited = await jobs.submit(
        SubmitRequest(queue="ratelimit", task="diagnostics.fail", payload={"retry_after_ms": 1500})
    )
    behind = await jobs.submit(SubmitRequest(queue="ratelimit", task="diagnostics.echo", payload={}))
    # It ran once, hit the "429", and is back in line at the front, unharmed.
    held = await eventually(
        lambda: store.get(limited.id),
        lambda j: j.started_at_ms is not None and j.state is JobState.WAITING,
        timeout=15,
        what="the rate-limited job back in line",
    )
    assert (held.attempts_made, held.deliveries) == (0, 0), "being rate limited used no attempt"
    await jobs.cancel(limited.id)
    done = await eventually(
        lambda: store.get(behind.id), lambda j: j.state is JobState.COMPLETED, timeout=15, what="held job ran"
    )
    assert held.started_at_ms is not None
    assert done.started_at_ms is not None
    assert done.started_at_ms - held.started_at_ms >= 1500, "nothing on the queue started during the hold"
