"""Real worker processes: crash recovery, long jobs, poison jobs, graceful stop, timing, cancellation.

Each test gives the analytics queue short leases and delays (through the stored policies, as the admin
API will) so the reliability guarantees are shown in seconds.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path

from redis.asyncio import Redis
from redis.exceptions import RedisError

from devstack.ports import free_port
from devstack.processes import ManagedProcess
from devstack.redis import RedisServer
from devstack.services import REPO_ROOT
from services.jobs.broker import SwitchboardBroker
from services.jobs.catalog import register_tasks
from services.jobs.manager import JobManager, SubmitRequest
from services.jobs.model import Job, JobState
from services.jobs.queues import QUEUE_NAMES, PolicyBook
from services.jobs.store import JobStore
from services.runtime.redis_mux import RedisMux
from services.runtime.redis_pool import create_redis
from services.runtime.settings import RedisSettings
from tests.integration.conftest import Workers, build_manager, store_policies
from tests.polling import eventually


async def _submit(jobs: JobManager, task: str, *, queue: str = "analytics", **payload: object) -> Job:
    return await jobs.submit(SubmitRequest(queue=queue, task=task, payload=dict(payload)))


async def _wait_state(store: JobStore, job_id: str, *states: JobState, timeout: float) -> Job:  # noqa: ASYNC109
    return await eventually(
        lambda: store.get(job_id),
        lambda job: job.state in states,
        timeout=timeout,
        what=f"{job_id} {states}",
        tolerate=(RedisError,),
    )


async def test_kill_9_mid_job_another_worker_finishes_it(
    jobs: JobManager, store: JobStore, redis_client: Redis, key_prefix: str, workers: Workers
) -> None:
    await store_policies(redis_client, key_prefix, {"analytics": {"lease_ms": 1000}})
    started = [workers.start("a"), workers.start("b")]
    job = await _submit(jobs, "diagnostics.sleep", ms=1500)
    active = await _wait_state(store, job.id, JobState.ACTIVE, timeout=15)
    victim = next(w for w in started if active.worker.endswith(w.worker_id_suffix))
    victim.process.kill()
    killed_at = time.monotonic()

    done = await _wait_state(store, job.id, JobState.COMPLETED, timeout=1 + 1.5 + 5)
    assert time.monotonic() - killed_at <= 1.0 + 1.5 + 5, "lease timeout + the job + 5 s"
    assert done.deliveries == 2
    assert not done.worker
    assert done.result == {"slept_ms": 1500}


async def test_a_job_longer_than_its_lease_is_never_started_twice(
    jobs: JobManager, store: JobStore, redis_client: Redis, key_prefix: str, workers: Workers
) -> None:
    await store_policies(redis_client, key_prefix, {"analytics": {"lease_ms": 500}})
    workers.start("a")
    workers.start("b")
    job = await _submit(jobs, "diagnostics.sleep", ms=2500)
    done = await _wait_state(store, job.id, JobState.COMPLETED, JobState.FAILED, timeout=20)
    assert done.state is JobState.COMPLETED
    assert (done.deliveries, done.attempts_made) == (1, 1), "five leases long, delivered once"


async def test_a_job_that_kills_its_worker_is_dead_lettered_while_others_flow(
    jobs: JobManager, store: JobStore, redis_client: Redis, key_prefix: str, workers: Workers
) -> None:
    await store_policies(redis_client, key_prefix, {"analytics": {"lease_ms": 500, "max_deliveries": 2}})
    for name in ("a", "b", "c"):
        workers.start(name)
    poison = await _submit(jobs, "diagnostics.crash")
    dead = await _wait_state(store, poison.id, JobState.DEAD_LETTERED, timeout=30)
    assert dead.deliveries == 2
    assert dead.error is not None
    assert dead.error.type == "DeliveryLimitExceeded"
    assert sum(w.process.running for w in workers.started) == 1, "it took two workers down with it"

    echoes = [await _submit(jobs, "diagnostics.echo", n=index) for index in range(20)]
    for echo in echoes:
        assert (await _wait_state(store, echo.id, JobState.COMPLETED, timeout=15)).result == echo.payload


async def test_sigterm_finishes_what_it_can_hands_back_the_rest_and_exits_0(
    jobs: JobManager, store: JobStore, workers: Workers
) -> None:
    worker = workers.start("a", SHUTDOWN_GRACE_SECONDS="2")
    short = await _submit(jobs, "diagnostics.sleep", ms=800)
    long = await _submit(jobs, "diagnostics.sleep", ms=60_000)
    for job in (short, long):
        await _wait_state(store, job.id, JobState.ACTIVE, timeout=15)

    worker.process.signal(signal.SIGTERM)
    assert await asyncio.to_thread(worker.process.wait, 15) == 0

    assert (await store.get(short.id)).state is JobState.COMPLETED, "finished within the grace period"
    handed_back = await store.get(long.id)
    assert (handed_back.state, handed_back.deliveries) == (JobState.WAITING, 0)

    workers.start("b")
    # Back in the queue: another worker takes it.
    await _wait_state(store, long.id, JobState.ACTIVE, timeout=15)


async def test_retry_backoff_and_delays_are_kept_without_a_scheduler(
    jobs: JobManager, store: JobStore, redis_client: Redis, key_prefix: str, workers: Workers
) -> None:
    base = 250
    await store_policies(
        redis_client,
        key_prefix,
        {"analytics": {"backoff": {"type": "exponential", "base_delay_ms": base, "jitter": 0}}},
    )
    workers.start("a")
    # The worker is up (a job ran) before the clock of the delayed job starts.
    warm_up = await _submit(jobs, "diagnostics.echo")
    await _wait_state(store, warm_up.id, JobState.COMPLETED, timeout=15)
    failing = await jobs.submit(
        SubmitRequest(queue="analytics", task="diagnostics.fail", payload={"retryable": True}, max_attempts=4)
    )
    delayed = await jobs.submit(
        SubmitRequest(queue="analytics", task="diagnostics.echo", payload={}, delay_ms=700)
    )
    failed = await _wait_state(store, failing.id, JobState.FAILED, timeout=20)
    errors = failed.attempt_errors
    assert [e.attempt for e in errors] == [1, 2, 3, 4]
    for attempt in (1, 2, 3):
        expected = base * 2 ** (attempt - 1)
        previous_end, next_start = errors[attempt - 1].occurred_at_ms, errors[attempt].started_at_ms
        assert previous_end is not None
        assert next_start is not None
        assert 0.8 * expected <= next_start - previous_end <= 1.2 * expected, (attempt, errors)

    log_path = workers.started[0].process.log_path

    async def failed_attempts_logged() -> list[dict[str, object]]:
        lines = (await asyncio.to_thread(log_path.read_text)).splitlines()
        return [json.loads(line) for line in lines if failing.id in line and '"attempt failed"' in line]

    # The worker logs an attempt's failure once its outcome is stored: the last line may trail the state.
    logged = await eventually(
        failed_attempts_logged,
        lambda entries: len(entries) >= 4,
        timeout=5,
        what="four failed attempts logged",
    )
    assert [(entry["attempt"], entry["error_type"], entry["queue"], entry["task"]) for entry in logged] == [
        (attempt, "RetryableError", "analytics", "diagnostics.fail") for attempt in (1, 2, 3, 4)
    ], "each failed attempt is logged once, structured"

    done = await _wait_state(store, delayed.id, JobState.COMPLETED, timeout=10)
    assert done.started_at_ms is not None
    late_by = done.started_at_ms - (done.created_at_ms + 700)
    assert 0 <= late_by <= 100, f"started {late_by} ms after due"


async def test_redis_restarted_under_a_running_worker_loses_nothing(
    tmp_path: Path, key_prefix: str, workers: Workers
) -> None:
    redis_server = RedisServer(free_port(), tmp_path / "aof-redis", appendonly=True)
    redis_server.start()
    client = create_redis(RedisSettings(port=redis_server.port))
    mux = RedisMux(RedisSettings(port=redis_server.port))
    store = JobStore(client, mux, prefix=key_prefix)
    jobs = build_manager(store)
    restarting_workers = Workers(redis_server.port, key_prefix, tmp_path)
    try:
        restarting_workers.start("a")
        before = [await _submit(jobs, "diagnostics.sleep", ms=300) for _ in range(20)]
        await _wait_state(store, before[0].id, JobState.ACTIVE, JobState.COMPLETED, timeout=15)

        redis_server.restart()

        after = [await _submit(jobs, "diagnostics.echo", n=index) for index in range(10)]
        for job in before + after:
            await _wait_state(store, job.id, JobState.COMPLETED, timeout=30)
        assert restarting_workers.started[0].process.running, "the worker reconnected on its own"
    finally:
        restarting_workers.stop_all()
        await mux.aclose()
        await client.aclose()
        redis_server.stop()


async def test_cancelling_an_active_job_stops_its_task_within_a_second(
    jobs: JobManager, store: JobStore, workers: Workers
) -> None:
    workers.start("a")
    job = await _submit(jobs, "diagnostics.sleep", ms=30_000)
    await eventually(
        lambda: store.get(job.id),
        lambda j: j.state is JobState.ACTIVE and j.progress is not None,
        timeout=15,
        what="sleeping and reporting progress",
    )
    asked = await jobs.cancel(job.id)
    assert asked.cancel_requested
    assert asked.state in (JobState.ACTIVE, JobState.CANCELLED), "told, or already stopped when read"
    started = time.monotonic()
    cancelled = await _wait_state(store, job.id, JobState.CANCELLED, JobState.COMPLETED, timeout=5)
    assert cancelled.state is JobState.CANCELLED
    assert time.monotonic() - started <= 1.0


async def test_a_waiting_job_cancelled_never_starts(
    jobs: JobManager, store: JobStore, workers: Workers
) -> None:
    await jobs.pause("analytics", paused=True)
    job = await _submit(jobs, "diagnostics.echo")
    assert (await jobs.cancel(job.id)).state is JobState.CANCELLED
    marker = await _submit(jobs, "diagnostics.echo", marker=True)
    await jobs.pause("analytics", paused=False)
    workers.start("a")
    await _wait_state(store, marker.id, JobState.COMPLETED, timeout=15)
    never = await store.get(job.id)
    assert (never.state, never.started_at_ms, never.deliveries) == (JobState.CANCELLED, None, 0)


async def test_policy_changes_reach_running_workers(
    jobs: JobManager, store: JobStore, redis_client: Redis, key_prefix: str, workers: Workers
) -> None:
    worker = workers.start("a")
    await store_policies(redis_client, key_prefix, {"analytics": {"timeout_ms": 200, "max_attempts": 1}}, 7)
    await eventually(
        lambda: asyncio.to_thread(worker.process.log_path.read_text),
        lambda log: '"settings_version": 7' in log,
        timeout=10,
        what="the worker applying the new policies",
    )
    job = await _submit(jobs, "diagnostics.sleep", ms=5000)
    failed = await _wait_state(store, job.id, JobState.FAILED, timeout=10)
    assert failed.error is not None
    assert failed.error.type == "TimeoutError"
    assert failed.error.retryable


async def test_retention_runs_inside_the_workers(
    jobs: JobManager, store: JobStore, redis_client: Redis, key_prefix: str, workers: Workers
) -> None:
    await store_policies(redis_client, key_prefix, {"analytics": {"remove_on_complete": {"count": 2}}})
    workers.start("a")
    submitted = []
    for index in range(5):
        # One at a time, so the completion order is the submit order.
        job = await _submit(jobs, "diagnostics.echo", n=index)
        await _wait_state(store, job.id, JobState.COMPLETED, timeout=15)
        submitted.append(job)
    await eventually(
        lambda: store.counts("analytics"),
        lambda counts: counts[JobState.COMPLETED] == 2,
        timeout=15,
        what="only the newest two completed jobs kept",
    )
    kept, _ = await store.list_jobs(queues=["analytics"], state=JobState.COMPLETED)
    assert [job.id for job in kept] == [submitted[4].id, submitted[3].id], "the newest two are the ones kept"


async def test_a_worker_serves_only_its_queues(jobs: JobManager, store: JobStore, workers: Workers) -> None:
    workers.start("bq", queues=("bigquery",))
    analytics = await _submit(jobs, "diagnostics.echo", queue="analytics")
    bigquery = await _submit(jobs, "diagnostics.echo", queue="bigquery")
    await _wait_state(store, bigquery.id, JobState.COMPLETED, timeout=15)
    assert (await store.get(analytics.id)).state is JobState.WAITING


async def test_a_stock_taskiq_worker_runs_switchboard_jobs(
    jobs: JobManager, store: JobStore, redis_server: RedisServer, key_prefix: str, tmp_path: Path
) -> None:
    worker = ManagedProcess(
        "taskiq-worker",
        [sys.executable, "-m", "taskiq", "worker", "services.jobs.taskiq_app:broker", "--workers", "1"],
        log_path=tmp_path / "taskiq-worker.log",
        env={**os.environ, "REDIS_PORT": str(redis_server.port), "JOBS_KEY_PREFIX": key_prefix},
        cwd=REPO_ROOT,
    )
    worker.start()
    try:
        job = await _submit(jobs, "diagnostics.echo", queue="analytics", via="taskiq worker")
        done = await _wait_state(store, job.id, JobState.COMPLETED, timeout=30)
        assert done.result == {"via": "taskiq worker"}
    finally:
        worker.stop()


async def test_taskiq_kiq_submits_a_job_and_waits_for_its_result(store: JobStore, workers: Workers) -> None:
    broker = SwitchboardBroker(store, PolicyBook(), queues=QUEUE_NAMES)
    register_tasks(broker, diagnostics_enabled=True)
    workers.start("a")
    echo = broker.find_task("diagnostics.echo")
    assert echo is not None
    sent = await echo.kicker().with_labels(queue="bigquery").kiq(hello="taskiq")
    result = await sent.wait_result(timeout=15, check_interval=0.02)
    assert result.return_value == {"hello": "taskiq"}
    assert (await store.get(sent.task_id)).queue == "bigquery"


async def test_a_worker_without_the_task_leaves_its_job_to_one_that_has_it(
    jobs: JobManager, store: JobStore, redis_client: Redis, workers: Workers
) -> None:
    """A rolling deploy, or workers with different DIAGNOSTICS_ENABLED: the job is never failed for it."""
    lacking = workers.start("without-diagnostics", DIAGNOSTICS_ENABLED="false")
    log = lacking.process.log_path
    await eventually(lambda: asyncio.to_thread(log.read_text), lambda text: "worker started" in text,
                     timeout=15, what="the worker without diagnostics is up")  # fmt: skip
    job = await _submit(jobs, "diagnostics.echo")
    # The submit's wake-up is consumed: the lacking worker looked at the queue after the job arrived.
    marker = store.queue_key("analytics", "marker")
    await eventually(lambda: redis_client.exists(marker), lambda count: count == 0, timeout=15,
                     what="the worker woke for the job")  # fmt: skip
    waiting = await store.get(job.id)
    assert (waiting.state, waiting.deliveries, waiting.attempts_made) == (JobState.WAITING, 0, 0)
    workers.start("with-diagnostics")
    done = await _wait_state(store, job.id, JobState.COMPLETED, timeout=15)
    assert (done.attempts_made, done.deliveries) == (1, 1), "no attempt or delivery lost to the other worker"
