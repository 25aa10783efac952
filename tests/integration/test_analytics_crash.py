"""Exactly once across a crash: a real worker applies a batch and is killed with SIGKILL before its job is
recorded as finished; the job is delivered again, to another worker, and the batch is still counted once."""

from __future__ import annotations

import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.analytics.buckets import Granularity, query_buckets
from services.analytics.events import Event
from services.analytics.keys import AnalyticsKeys
from services.analytics.store import AnalyticsStore, StoreOutcome
from services.analytics_retention import AnalyticsRetention
from services.jobs.manager import JobManager, SubmitRequest
from services.jobs.model import JobState
from services.jobs.store import JobStore
from tests.integration.analytics_crash_tasks import CRASH_TASK
from tests.integration.conftest import Workers, store_policies
from tests.polling import eventually

EVENTS = 1000


async def test_a_worker_killed_after_applying_a_batch_does_not_get_it_counted_twice(
    jobs: JobManager, store: JobStore, redis_client: Redis, key_prefix: str, workers: Workers
) -> None:
    analytics_prefix = f"{key_prefix}:analytics"
    analytics = AnalyticsStore(redis_client, AnalyticsKeys(analytics_prefix))
    now_ms = int(time.time() * 1000)
    events = [Event("checkout", f"user-{i % 20}", now_ms - i, {"i": i}) for i in range(EVENTS)]
    kept = await analytics.store_batch("big", events, ttl_seconds=600, max_names=10, consumers=1)
    assert kept.outcome is StoreOutcome.STORED
    await store_policies(redis_client, key_prefix, {"analytics": {"lease_ms": 1000}})
    env = {
        "WORKER_TASK_MODULES": "tests.integration.analytics_crash_tasks",
        "ANALYTICS_KEY_PREFIX": analytics_prefix,
    }
    started = [
        workers.start("a", queues=("analytics",), **env),
        workers.start("b", queues=("analytics",), **env),
    ]

    job = await eventually(
        lambda: jobs.submit(SubmitRequest(queue="analytics", task=CRASH_TASK, payload={"batch_id": "big"})),
        lambda submitted: True,
        timeout=20,
        what="a worker registered the task",
        tolerate=(Exception,),
    )
    done = await eventually(
        lambda: store.get(job.id),
        lambda found: found.state in {JobState.COMPLETED, JobState.FAILED, JobState.DEAD_LETTERED},
        timeout=30,
        what="the job finished",
        tolerate=(RedisError,),
    )
    assert done.state is JobState.COMPLETED, done
    assert done.deliveries == 2, "the first delivery's worker died after applying"
    assert sum(not worker.process.running for worker in started) == 1, "exactly one worker was killed"
    assert done.result == {"batch_id": "big", "applied": False}, "the second delivery found the batch applied"

    hour = query_buckets(
        Granularity.HOUR, now_ms - 1, now_ms, now_ms=now_ms, retention=AnalyticsRetention(), max_buckets=10
    )
    series = await analytics.series("checkout", hour)
    assert [bucket.count for bucket in series.buckets] == [EVENTS]
    assert [total.total for total in await analytics.names()] == [EVENTS]
