"""The job store's transitions against a real Redis: each is one atomic script, timed by Redis."""

from __future__ import annotations

import pytest

from services.jobs.model import AttemptError, JobState
from services.jobs.store import ClaimedJob, JobStore, NothingToClaim
from services.runtime.errors import ConflictError, FailedPreconditionError, NotFoundError

LEASE = 30_000


async def _submit(store: JobStore, job_id: str, *, queue: str = "analytics", **options: int) -> None:
    await store.submit(
        queue=queue, task="diagnostics.echo", payload={"n": job_id}, message=b"{}", job_id=job_id,
        max_attempts=options.pop("max_attempts", 3), **options,
    )  # fmt: skip


async def _claim(store: JobStore, queue: str = "analytics", worker: str = "w1") -> ClaimedJob:
    claimed = await store.claim(worker, [(queue, LEASE)])
    assert isinstance(claimed, ClaimedJob), claimed
    return claimed


async def test_submit_is_idempotent_by_job_id(store: JobStore) -> None:
    await _submit(store, "j1")
    again, created = await store.submit(
        queue="analytics", task="diagnostics.echo", payload={"other": 1}, message=b"{}", job_id="j1",
        max_attempts=3,
    )  # fmt: skip
    assert not created
    assert again.payload == {"n": "j1"}, "the first job stands"
    assert (await store.counts("analytics"))[JobState.WAITING] == 1
    with pytest.raises(ConflictError, match="already used"):
        await store.submit(
            queue="bigquery", task="diagnostics.echo", payload={}, message=b"{}", job_id="j1", max_attempts=1
        )


async def test_lower_priority_number_first_then_submit_order(store: JobStore) -> None:
    await _submit(store, "late-normal", priority=5)
    await _submit(store, "urgent", priority=1)
    await _submit(store, "later-normal", priority=5)
    await _submit(store, "no-priority", priority=0)
    order = [(await _claim(store)).id for _ in range(4)]
    assert order == ["no-priority", "urgent", "late-normal", "later-normal"]
    assert isinstance(await store.claim("w1", [("analytics", LEASE)]), NothingToClaim)


async def test_a_delayed_job_is_not_claimable_before_it_is_due(store: JobStore) -> None:
    await _submit(store, "later", delay_ms=60_000)
    job = await store.get("later")
    assert job.state is JobState.DELAYED
    nothing = await store.claim("w1", [("analytics", LEASE)])
    assert isinstance(nothing, NothingToClaim)
    assert nothing.next_due_ms == job.run_at_ms, "the worker learns when to look again"


async def test_finish_records_result_or_schedules_a_retry_or_fails(store: JobStore) -> None:
    await _submit(store, "ok")
    claimed = await _claim(store)
    assert (await store.finish(claimed.id, "w1", result={"x": 1})).state is JobState.COMPLETED
    job = await store.get("ok")
    assert (job.state, job.result, job.attempts_made) == (JobState.COMPLETED, {"x": 1}, 1)

    await _submit(store, "flaky", max_attempts=2)
    error = AttemptError(type="RetryableError", message="try later", retryable=True)
    claimed = await _claim(store)
    assert (
        await store.finish(claimed.id, "w1", error=error, retry_delay_ms=50_000)
    ).state is JobState.DELAYED
    job = await store.get("flaky")
    assert job.attempts_made == 1
    assert job.run_at_ms is not None
    assert job.error is not None
    assert job.error.occurred_at_ms is not None
    assert job.run_at_ms - job.error.occurred_at_ms == 50_000

    await _submit(store, "broken")
    claimed = await _claim(store)
    fatal = AttemptError(type="NonRetryableError", message="bad input", retryable=False)
    assert (await store.finish(claimed.id, "w1", error=fatal)).state is JobState.FAILED
    assert (await store.get("broken")).attempts_made == 1, "attempts were left, but it failed at once"


async def test_a_late_outcome_from_a_worker_that_lost_the_job_is_ignored(store: JobStore) -> None:
    await _submit(store, "j1")
    await store.claim("w1", [("analytics", 0)])  # a lease that ran out at once
    requeued, dead = await store.reclaim_expired("analytics", max_deliveries=5)
    assert (requeued, dead) == (1, [])
    await _claim(store, worker="w2")
    assert (await store.finish("j1", "w1", result="late")).state is None
    assert (await store.get("j1")).state is JobState.ACTIVE


async def test_reclaim_dead_letters_after_max_deliveries(store: JobStore) -> None:
    await _submit(store, "poison")
    for delivery in (1, 2):
        claimed = await store.claim("w", [("analytics", 0)])
        assert isinstance(claimed, ClaimedJob)
        assert claimed.deliveries == delivery
        requeued, dead = await store.reclaim_expired("analytics", max_deliveries=2)
    assert (requeued, dead) == (0, ["poison"])
    job = await store.get("poison")
    assert job.state is JobState.DEAD_LETTERED
    assert job.error is not None
    assert job.error.type == "DeliveryLimitExceeded"


async def test_heartbeat_extends_leases_and_reports_cancellation(store: JobStore) -> None:
    await _submit(store, "long")
    await _claim(store)
    assert await store.heartbeat("w1", [("analytics", "long")], 60_000) == {}
    assert await store.reclaim_expired("analytics", max_deliveries=5) == (0, [])
    await store.cancel("long")
    assert await store.heartbeat("w1", [("analytics", "long")], 60_000) == {"long": "cancel"}
    assert await store.heartbeat("someone-else", [("analytics", "long")], 60_000) == {"long": "lost"}


async def test_cancel_waiting_and_delayed_at_once_and_never_start(store: JobStore) -> None:
    await _submit(store, "waiting")
    await _submit(store, "delayed", delay_ms=1)
    for job_id in ("waiting", "delayed"):
        cancelled = await store.cancel(job_id)
        assert cancelled.state is JobState.CANCELLED
        assert cancelled.finished_at_ms is not None
    assert isinstance(await store.claim("w1", [("analytics", LEASE)]), NothingToClaim)


async def test_cancel_an_active_job_asks_its_worker(store: JobStore) -> None:
    await _submit(store, "running")
    claimed = await _claim(store)
    job = await store.cancel("running")
    assert (job.state, job.cancel_requested) == (JobState.ACTIVE, True)
    error = AttemptError(type="JobCancelledError", message="stopped", retryable=False)
    assert (await store.finish(claimed.id, "w1", error=error)).state is JobState.CANCELLED


async def test_impossible_transitions_say_the_current_state(store: JobStore) -> None:
    await _submit(store, "done")
    await store.finish((await _claim(store)).id, "w1", result=None)
    with pytest.raises(FailedPreconditionError, match="already COMPLETED"):
        await store.cancel("done")
    with pytest.raises(FailedPreconditionError, match="is COMPLETED"):
        await store.retry("done")
    with pytest.raises(NotFoundError):
        await store.cancel("nope")


async def test_retry_puts_a_failed_job_back_with_attempts_reset(store: JobStore) -> None:
    await _submit(store, "j1", max_attempts=1)
    error = AttemptError(type="RetryableError", message="x", retryable=True)
    await store.finish((await _claim(store)).id, "w1", error=error)
    assert (await store.get("j1")).state is JobState.FAILED
    job = await store.retry("j1")
    assert (job.state, job.attempts_made, job.deliveries) == (JobState.WAITING, 0, 0)
    assert len(job.attempt_errors) == 1, "the history stays"
    assert (await _claim(store)).id == "j1"


async def test_a_paused_queue_accepts_but_starts_nothing(store: JobStore) -> None:
    await store.set_paused("analytics", True)
    await _submit(store, "j1")
    assert isinstance(await store.claim("w1", [("analytics", LEASE)]), NothingToClaim)
    await store.set_paused("analytics", False)
    assert (await _claim(store)).id == "j1"


async def test_release_hands_jobs_back_without_counting_the_delivery(store: JobStore) -> None:
    await _submit(store, "j1")
    await _claim(store)
    assert await store.release("w1", ["j1"]) == 1
    job = await store.get("j1")
    assert (job.state, job.deliveries) == (JobState.WAITING, 0)


async def test_listing_is_newest_first_paginated_and_searchable(store: JobStore) -> None:
    for index in range(7):
        await _submit(store, f"job-{index}", queue="bigquery" if index % 2 else "analytics")
    seen: list[str] = []
    token = ""
    while True:
        page, token = await store.list_jobs(
            queues=["analytics", "bigquery"], state=None, page_size=3, page_token=token
        )
        seen += [job.id for job in page]
        if not token:
            break
    assert seen == [f"job-{index}" for index in reversed(range(7))]
    waiting, _ = await store.list_jobs(queues=["bigquery"], state=JobState.WAITING)
    assert [job.id for job in waiting] == ["job-5", "job-3", "job-1"]
    found, _ = await store.list_jobs(queues=["analytics", "bigquery"], state=None, search="JOB-4")
    assert [job.id for job in found] == ["job-4"]


async def test_retention_removes_by_count_and_age(store: JobStore) -> None:
    for index in range(5):
        await _submit(store, f"j{index}")
        await store.finish((await _claim(store)).id, "w1", result=index)
    assert await store.remove_finished("analytics", JobState.COMPLETED, keep_count=2) == 3
    remaining, _ = await store.list_jobs(queues=["analytics"], state=JobState.COMPLETED)
    assert [job.id for job in remaining] == ["j4", "j3"], "the newest are kept"
    with pytest.raises(NotFoundError):
        await store.get("j0")
    assert await store.remove_finished("analytics", JobState.COMPLETED, max_age_ms=0) == 2
    assert (await store.counts("analytics"))[JobState.COMPLETED] == 0
