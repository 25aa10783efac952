"""The job store's transitions against a real Redis: each is one atomic script, timed by Redis."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator, Sequence

import pytest
from redis.asyncio import Redis

from devstack.redis import RedisServer
from services.jobs.model import AttemptError, Job, JobState
from services.jobs.store import ClaimedJob, JobStore, NothingToClaim
from services.runtime.errors import ConflictError, FailedPreconditionError, NotFoundError
from services.runtime.redis_mux import RedisMux
from services.runtime.settings import RedisSettings
from tests.lossy_proxy import ReplyLosingProxy

LEASE = 30_000
TASKS = ["diagnostics.echo"]


async def _submit(store: JobStore, job_id: str, *, queue: str = "analytics", **options: int) -> None:
    await store.submit(
        queue=queue, task="diagnostics.echo", payload={"n": job_id}, message=b"{}", job_id=job_id,
        max_attempts=options.pop("max_attempts", 3), **options,
    )  # fmt: skip


async def _claim(store: JobStore, queue: str = "analytics", worker: str = "w1") -> ClaimedJob:
    claimed = await store.claim(worker, queue, LEASE, tasks=TASKS)
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
    assert isinstance(await store.claim("w1", "analytics", LEASE, tasks=TASKS), NothingToClaim)


async def test_a_delayed_job_is_not_claimable_before_it_is_due(store: JobStore) -> None:
    await _submit(store, "later", delay_ms=60_000)
    job = await store.get("later")
    assert job.state is JobState.DELAYED
    nothing = await store.claim("w1", "analytics", LEASE, tasks=TASKS)
    assert isinstance(nothing, NothingToClaim)
    assert nothing.next_due_ms == job.run_at_ms, "the worker learns when to look again"


async def test_finish_records_result_or_schedules_a_retry_or_fails(store: JobStore) -> None:
    await _submit(store, "ok")
    claimed = await _claim(store)
    assert (await store.finish(claimed, result={"x": 1})).state is JobState.COMPLETED
    job = await store.get("ok")
    assert (job.state, job.result, job.attempts_made) == (JobState.COMPLETED, {"x": 1}, 1)

    await _submit(store, "flaky", max_attempts=2)
    error = AttemptError(type="RetryableError", message="try later", retryable=True)
    claimed = await _claim(store)
    assert (await store.finish(claimed, error=error, retry_delay_ms=50_000)).state is JobState.DELAYED
    job = await store.get("flaky")
    assert job.attempts_made == 1
    assert job.run_at_ms is not None
    assert job.error is not None
    assert job.error.occurred_at_ms is not None
    assert job.run_at_ms - job.error.occurred_at_ms == 50_000

    await _submit(store, "broken")
    claimed = await _claim(store)
    fatal = AttemptError(type="NonRetryableError", message="bad input", retryable=False)
    assert (await store.finish(claimed, error=fatal)).state is JobState.FAILED
    assert (await store.get("broken")).attempts_made == 1, "attempts were left, but it failed at once"


async def test_a_late_outcome_from_a_worker_that_lost_the_job_is_ignored(store: JobStore) -> None:
    await _submit(store, "j1")
    lost = await store.claim("w1", "analytics", 0, tasks=TASKS)  # a lease that ran out at once
    assert isinstance(lost, ClaimedJob)
    requeued, dead = await store.reclaim_expired("analytics", max_deliveries=5)
    assert (requeued, dead) == (1, [])
    await _claim(store, worker="w2")
    assert (await store.finish(lost, result="late")).state is None
    assert (await store.get("j1")).state is JobState.ACTIVE


async def test_reclaim_dead_letters_after_max_deliveries(store: JobStore) -> None:
    await _submit(store, "poison")
    for delivery in (1, 2):
        claimed = await store.claim("w", "analytics", 0, tasks=TASKS)
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
    claimed = await _claim(store)
    assert await store.heartbeat("analytics", [claimed], 60_000) == {}
    assert await store.reclaim_expired("analytics", max_deliveries=5) == (0, [])
    await store.cancel("long")
    assert await store.heartbeat("analytics", [claimed], 60_000) == {"long": "cancel"}
    someone_else = dataclasses.replace(claimed, lease_token="another-claim")
    assert await store.heartbeat("analytics", [someone_else], 60_000) == {"long": "lost"}


async def test_cancel_waiting_and_delayed_at_once_and_never_start(store: JobStore) -> None:
    await _submit(store, "waiting")
    await _submit(store, "delayed", delay_ms=1)
    for job_id in ("waiting", "delayed"):
        cancelled = await store.cancel(job_id)
        assert cancelled.state is JobState.CANCELLED
        assert cancelled.finished_at_ms is not None
    assert isinstance(await store.claim("w1", "analytics", LEASE, tasks=TASKS), NothingToClaim)


async def test_cancel_an_active_job_asks_its_worker(store: JobStore) -> None:
    await _submit(store, "running")
    claimed = await _claim(store)
    job = await store.cancel("running")
    assert (job.state, job.cancel_requested) == (JobState.ACTIVE, True)
    error = AttemptError(type="JobCancelledError", message="stopped", retryable=False)
    assert (await store.finish(claimed, error=error)).state is JobState.CANCELLED


async def test_impossible_transitions_say_the_current_state(store: JobStore) -> None:
    await _submit(store, "done")
    await store.finish(await _claim(store), result=None)
    with pytest.raises(FailedPreconditionError, match="already COMPLETED"):
        await store.cancel("done")
    with pytest.raises(FailedPreconditionError, match="is COMPLETED"):
        await store.retry("done")
    with pytest.raises(NotFoundError):
        await store.cancel("nope")


async def test_retry_puts_a_failed_job_back_with_attempts_reset(store: JobStore) -> None:
    await _submit(store, "j1", max_attempts=1)
    error = AttemptError(type="RetryableError", message="x", retryable=True)
    await store.finish(await _claim(store), error=error)
    assert (await store.get("j1")).state is JobState.FAILED
    job = await store.retry("j1")
    assert (job.state, job.attempts_made, job.deliveries) == (JobState.WAITING, 0, 0)
    assert len(job.attempt_errors) == 1, "the history stays"
    assert (await _claim(store)).id == "j1"


async def test_a_paused_queue_accepts_but_starts_nothing(store: JobStore) -> None:
    await store.set_paused("analytics", True)
    await _submit(store, "j1")
    assert isinstance(await store.claim("w1", "analytics", LEASE, tasks=TASKS), NothingToClaim)
    await store.set_paused("analytics", False)
    assert (await _claim(store)).id == "j1"


async def test_release_hands_jobs_back_without_counting_the_delivery(store: JobStore) -> None:
    await _submit(store, "j1")
    claimed = await _claim(store)
    assert await store.release([claimed]) == 1
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
        await store.finish(await _claim(store), result=index)
    assert await store.remove_finished("analytics", JobState.COMPLETED, keep_count=2) == 3
    remaining, _ = await store.list_jobs(queues=["analytics"], state=JobState.COMPLETED)
    assert [job.id for job in remaining] == ["j4", "j3"], "the newest are kept"
    with pytest.raises(NotFoundError):
        await store.get("j0")
    assert await store.remove_finished("analytics", JobState.COMPLETED, max_age_ms=0) == 2
    assert (await store.counts("analytics"))[JobState.COMPLETED] == 0


# --- the key layout: no client-chosen id can reach another key ----------------------------------------


@pytest.mark.parametrize("suffix", [":errors", ":x", ""])
async def test_an_id_that_extends_another_jobs_id_never_touches_that_job(
    store: JobStore, suffix: str
) -> None:
    await _submit(store, "A", max_attempts=2)
    other = f"A{suffix}" if suffix else "errors:A"
    await _submit(store, other)
    claimed = await _claim(store)
    assert claimed.id == "A"
    error = AttemptError(type="RetryableError", message="boom", retryable=True)
    assert (await store.finish(claimed, error=error)).state is JobState.WAITING, "no WRONGTYPE halfway"
    job_a = await store.get("A")
    assert (job_a.state, len(job_a.attempt_errors)) == (JobState.WAITING, 1)
    assert (await store.get(other)).payload == {"n": other}, "the other job is intact"
    # A's retention removes A and nothing of the other job.
    assert (await store.finish(await _claim(store), result=1)).state is JobState.COMPLETED
    await store.remove_finished("analytics", JobState.COMPLETED, keep_count=0)
    with pytest.raises(NotFoundError):
        await store.get("A")
    assert (await store.get(other)).state is JobState.WAITING


async def test_every_key_carries_its_queues_hash_tag(store: JobStore, redis_client: Redis) -> None:
    for queue in ("analytics", "bigquery"):
        await _submit(store, f"{queue}-1", queue=queue, max_attempts=1)
        await _submit(store, f"{queue}-2", queue=queue)
        claimed = await _claim(store, queue)
        await store.finish(claimed, error=AttemptError(type="E", message="x", retryable=True))
        await store.retry(f"{queue}-1")
        await store.cancel(f"{queue}-2")
        await store.remove_finished(queue, JobState.CANCELLED, keep_count=0)
    keys = [key.decode() async for key in redis_client.scan_iter(match=f"{store.prefix}:*")]
    assert keys
    tagged = re.compile(rf"^{re.escape(store.prefix)}:\{{(analytics|bigquery)\}}:")
    assert [key for key in keys if not tagged.match(key)] == []


# --- re-sent transitions ------------------------------------------------------------------------------


@pytest.fixture
async def lossy_store(
    redis_server: RedisServer, redis_client: Redis, key_prefix: str
) -> AsyncIterator[tuple[JobStore, ReplyLosingProxy]]:
    proxy = ReplyLosingProxy(redis_server.port)
    await proxy.start()
    mux = RedisMux(RedisSettings(port=proxy.port, retries=2))
    yield JobStore(redis_client, mux, prefix=key_prefix), proxy
    await mux.aclose()
    await proxy.close()


async def test_a_claim_re_sent_after_its_reply_was_lost_answers_the_same_job(
    lossy_store: tuple[JobStore, ReplyLosingProxy],
) -> None:
    store, proxy = lossy_store
    await _submit(store, "first")
    await _submit(store, "second")
    await store.counts("analytics")  # the connection and the scripts are loaded before the loss
    proxy.lose_next_reply_to(b"claim:w1")
    claimed = await _claim(store)
    assert proxy.lost == 1, "the first claim's reply was lost, and the claim was sent again"
    assert claimed.id == "first"
    assert (await store.get("first")).deliveries == 1, "one delivery, not two"
    assert (await store.get("second")).state is JobState.WAITING, "no second job leased behind its back"


async def test_a_finish_re_sent_after_its_reply_was_lost_reports_what_was_recorded(
    lossy_store: tuple[JobStore, ReplyLosingProxy],
) -> None:
    store, proxy = lossy_store
    await _submit(store, "j1", max_attempts=3)
    claimed = await _claim(store)
    proxy.lose_next_reply_to(b"RetryableError")
    error = AttemptError(type="RetryableError", message="x", retryable=True)
    finished = await store.finish(claimed, error=error, retry_delay_ms=60_000)
    assert proxy.lost == 1
    assert (finished.state, finished.attempts) == (JobState.DELAYED, 1), "not 'stale', not counted twice"
    job = await store.get("j1")
    assert (job.attempts_made, len(job.attempt_errors)) == (1, 1)


async def test_a_retry_re_sent_after_its_reply_was_lost_answers_as_the_first_did(
    lossy_store: tuple[JobStore, ReplyLosingProxy],
) -> None:
    store, proxy = lossy_store
    await _submit(store, "j1", max_attempts=1)
    await store.finish(await _claim(store), error=AttemptError(type="E", message="x", retryable=False))
    proxy.lose_next_reply_to(b":op:")
    job = await store.retry("j1")
    assert proxy.lost == 1
    assert job.state is JobState.WAITING, "not refused as 'is WAITING' by the re-sent call"


# --- operator answers are the transition's own ----------------------------------------------------------


async def test_retry_and_cancel_answer_the_state_their_transition_produced(store: JobStore) -> None:
    await _submit(store, "j1", max_attempts=1)
    await store.finish(await _claim(store), error=AttemptError(type="E", message="x", retryable=False))
    before = await store.get("j1")
    retried = await store.retry("j1")
    # A fast worker takes it at once; the answer still says what the retry did.
    taken = await _claim(store)
    assert taken.id == "j1"
    assert retried.state is JobState.WAITING
    assert retried.version == before.version + 1
    assert (await store.get("j1")).version > retried.version
    cancelled = await store.cancel("j1")
    assert (cancelled.state, cancelled.cancel_requested) == (JobState.ACTIVE, True)


# --- listing while retention deletes ---------------------------------------------------------------------


@pytest.mark.parametrize("same_millisecond", [False, True])
async def test_listing_neither_ends_early_nor_repeats_while_jobs_are_removed_under_it(
    store: JobStore, redis_client: Redis, monkeypatch: pytest.MonkeyPatch, same_millisecond: bool
) -> None:
    for index in range(30):
        await _submit(store, f"job-{index:02}", queue="bigquery" if index % 3 == 0 else "analytics")
    if same_millisecond:
        # A fast machine creates several jobs in one millisecond: equal scores, ordered by id.
        for index in range(30):
            queue = "bigquery" if index % 3 == 0 else "analytics"
            await redis_client.zadd(store.queue_key(queue, "all"), {f"job-{index:02}": 1_000 + index // 4})
    expected = [f"job-{index:02}" for index in reversed(range(30))]
    first, token = await store.list_jobs(queues=["analytics", "bigquery"], state=None, page_size=5)
    assert [job.id for job in first] == expected[:5]
    read_jobs = store._get_many
    removed = False

    async def retention_runs_between_the_index_and_the_jobs(
        queues: Sequence[str], job_ids: Sequence[str]
    ) -> list[Job | None]:
        # The race: the next page's index entries are read, then retention removes those jobs.
        nonlocal removed
        if not removed:
            removed = True
            for job_id in expected[5:13]:
                await store.cancel(job_id)
            await store.remove_finished("analytics", JobState.CANCELLED, keep_count=0)
            await store.remove_finished("bigquery", JobState.CANCELLED, keep_count=0)
        return await read_jobs(queues, job_ids)

    monkeypatch.setattr(store, "_get_many", retention_runs_between_the_index_and_the_jobs)
    survivors = [job_id for job_id in expected[5:] if job_id not in expected[5:13]]
    seen: list[str] = []
    while token:
        page, token = await store.list_jobs(
            queues=["analytics", "bigquery"], state=None, page_size=5, page_token=token
        )
        assert len(page) == 5 or not token, "a short page only at the end"
        seen += [job.id for job in page]
    assert seen == survivors, "every remaining job once, newest first"
