"""Retention keeps up with a worker's throughput: 30,000 jobs through a queue that keeps 1,000."""

from __future__ import annotations

import asyncio
import time

from redis.asyncio import Redis

from services.jobs.manager import JobManager, SubmitRequest
from services.jobs.model import JobState
from services.jobs.store import JobStore
from tests.integration.conftest import Workers, store_policies
from tests.polling import eventually

JOBS = 30_000
KEEP = 1_000
# A worker drains ~3,000-4,000 jobs/s here; one maintenance tick (1 s) of completions on top of KEEP.
ONE_TICK = 5_000


async def _memory(redis: Redis) -> int:
    info = await redis.info("memory")
    return int(info["used_memory"])


async def test_thirty_thousand_jobs_leave_a_thousand_and_memory_returns(
    jobs: JobManager, store: JobStore, redis_client: Redis, key_prefix: str, workers: Workers
) -> None:
    await store_policies(
        redis_client, key_prefix, {"analytics": {"remove_on_complete": {"count": KEEP, "age_seconds": 0}}}
    )
    baseline = await _memory(redis_client)
    # The default tick (1 s): retention must keep up by removing more per tick, not by ticking faster.
    workers.start("a", MAINTENANCE_INTERVAL_SECONDS="1")
    for start in range(0, JOBS, 1000):
        await asyncio.gather(
            *(
                jobs.submit(SubmitRequest(queue="analytics", task="diagnostics.echo", payload={"n": n}))
                for n in range(start, start + 1000)
            )
        )
    most_completed = 0
    deadline = time.monotonic() + 120
    while True:
        counts = await store.counts("analytics")
        most_completed = max(most_completed, counts[JobState.COMPLETED])
        if counts[JobState.WAITING] + counts[JobState.ACTIVE] == 0:
            break
        assert time.monotonic() < deadline, f"not drained in 120 s: {counts}"
        await asyncio.sleep(0.1)
    assert most_completed <= KEEP + ONE_TICK, f"completed jobs piled up to {most_completed} during the drain"
    await eventually(
        lambda: store.counts("analytics"),
        lambda counts: counts[JobState.COMPLETED] == KEEP,
        timeout=5,
        what=f"{KEEP} completed jobs kept within a few seconds of the drain",
    )
    kept, _ = await store.list_jobs(queues=["analytics"], state=JobState.COMPLETED, page_size=1)
    assert kept[0].payload["n"] >= JOBS - KEEP - 200, "the newest are the ones kept"
    await eventually(
        lambda: _memory(redis_client),
        lambda used: used <= baseline + 4 * 1024 * 1024,
        timeout=10,
        what=f"Redis memory back near its baseline of {baseline} bytes",
    )
