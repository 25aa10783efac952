"""The store's dashboard operations against a real Redis: remove, promote, the search index, logs, the
timeline. Each index assertion checks Redis itself too, so a leak of index entries cannot pass unseen."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from redis.asyncio import Redis

from services.jobs import store as store_module
from services.jobs.model import AttemptError, JobFilter, JobState
from services.jobs.search_index import error_words, payload_words
from services.jobs.store import ClaimedJob, JobStore
from services.runtime.errors import FailedPreconditionError, NotFoundError

LEASE = 30_000
TASKS = ["diagnostics.echo", "diagnostics.fail"]
ALL = ("analytics", "bigquery", "ratelimit")


async def _submit(
    store: JobStore, job_id: str, payload: dict[str, Any], *, queue: str = "analytics",
    task: str = "diagnostics.echo", **options: int,
) -> None:  # fmt: skip
    await store.submit(
        queue=queue, task=task, payload=payload, message=b"{}", job_id=job_id,
        max_attempts=options.pop("max_attempts", 1), **options,
    )  # fmt: skip


async def _claim(store: JobStore, queue: str = "analytics", worker: str = "host:1") -> ClaimedJob:
    claimed = await store.claim(worker, queue, LEASE, tasks=TASKS)
    assert isinstance(claimed, ClaimedJob), claimed
    return claimed


async def _fail(store: JobStore, message: str, queue: str = "analytics") -> str:
    claimed = await _claim(store, queue)
    error = AttemptError(type="ValueError", message=message, retryable=False)
    assert (await store.finish(claimed, error=error)).state is JobState.FAILED
    return claimed.id


async def _ids(store: JobStore, **parts: Any) -> list[str]:
    jobs, _, _, _ = await store.search(JobFilter(queues=parts.pop("queues", ALL), **parts), page_size=100)
    return [job.id for job in jobs]


async def _index_keys(redis: Redis, key_prefix: str) -> list[str]:
    return sorted([key.decode() async for key in redis.scan_iter(match=f"{key_prefix}:*ix:*")])


async def _next_millisecond(store: JobStore) -> None:
    """Returns once Redis' clock, the one jobs are stamped with, is a millisecond on: jobs made within one
    millisecond have no order by time (a fresh-clone run made two in one and saw them swapped)."""
    seconds, micros = await store.redis.time()
    stamped = seconds * 1000 + micros // 1000
    while True:
        seconds, micros = await store.redis.time()
        if seconds * 1000 + micros // 1000 > stamped:
            return


async def test_search_by_task_word_error_state_and_time(store: JobStore) -> None:
    await _submit(store, "inv-1", {"customer": "ACME Corp", "kind": "invoice"})
    await _next_millisecond(store)
    await _submit(store, "inv-2", {"customer": "Globex", "kind": "invoice"}, queue="bigquery")
    await _next_millisecond(store)
    await _submit(store, "boom", {"customer": "acme"}, task="diagnostics.fail")
    assert await _ids(store, payload_words=("acme",)) == ["boom", "inv-1"], "newest first, any case"
    assert await _ids(store, payload_words=("invoice",)) == ["inv-2", "inv-1"], "across queues"
    assert await _ids(store, payload_words=("acme", "invoice")) == ["inv-1"], "every word must match"
    assert await _ids(store, payload_words=("customer",), queues=("bigquery",)) == ["inv-2"]
    assert await _ids(store, task="diagnostics.fail") == ["boom"]
    assert await _ids(store, job_id="inv-2") == ["inv-2"]
    assert await _ids(store, job_id="inv-2", states=frozenset({JobState.FAILED})) == []
    failed = await _fail(store, "connection refused by upstream")  # inv-1, the oldest waiting on analytics
    assert failed == "inv-1"
    assert await _ids(store, error_words=("refused",)) == ["inv-1"]
    assert await _ids(store, error_words=("valueerror",), states=frozenset({JobState.FAILED})) == ["inv-1"]
    assert await _ids(store, payload_words=("acme",), states=frozenset({JobState.WAITING})) == ["boom"]
    both = frozenset({JobState.WAITING, JobState.FAILED})
    assert await _ids(store, payload_words=("acme",), states=both) == ["boom", "inv-1"]
    jobs, _, _, _ = await store.search(JobFilter(queues=ALL, job_id="boom"), page_size=1)
    created = jobs[0].created_at_ms
    assert "boom" not in await _ids(store, created_before_ms=created)
    assert "boom" in await _ids(store, created_after_ms=created)


async def test_pages_neither_repeat_nor_skip_and_total_is_exact(store: JobStore) -> None:
    for n in range(25):
        await _submit(store, f"j{n:02d}", {"batch": "same"}, queue=ALL[n % 3])
    seen: list[str] = []
    token = ""
    while True:
        jobs, token, total, exact = await store.search(
            JobFilter(queues=ALL, payload_words=("same",)), page_size=7, page_token=token
        )
        assert (total, exact) == (25, True)
        seen += [job.id for job in jobs]
        if not token:
            break
    assert sorted(seen) == [f"j{n:02d}" for n in range(25)]
    assert len(seen) == 25


@pytest.mark.parametrize("budget", [10_000, 7], ids=["whole", "cut-short"])
async def test_pages_filter_and_count_alike_whatever_the_budget(
    store: JobStore, monkeypatch: pytest.MonkeyPatch, budget: int
) -> None:
    """The same jobs, in the same order, whether the walk sees everything or its budget cuts pages short."""
    monkeypatch.setattr(store_module, "SEARCH_WALK_BUDGET", budget)
    for n in range(40):
        word = "even" if n % 2 == 0 else "odd"
        await _submit(store, f"k{n:02d}", {"w": word, "all": "common"}, queue=ALL[n % 2])
    for _ in range(10):  # the ten oldest analytics jobs (k00, k02, ... k18) fail
        await _fail(store, "broken")
    query = JobFilter(queues=ALL, payload_words=("even",), states=frozenset({JobState.FAILED}))
    seen: list[str] = []
    token = ""
    for _ in range(100):
        jobs, token, total, exact = await store.search(query, page_size=3, page_token=token)
        seen += [job.id for job in jobs]
        if not token:
            break
    assert seen == [f"k{n:02d}" for n in range(18, -1, -2)], "newest first, none repeated or skipped"
    if budget > 100:
        assert (total, exact) == (10, True)
    else:
        assert total <= 10 and not exact, "a walk cut by its budget counts at least, and says so"
    odd_waiting = JobFilter(queues=ALL, payload_words=("odd", "common"), states=frozenset({JobState.WAITING}))
    found: list[str] = []
    token = ""
    for _ in range(100):
        jobs, token, _, _ = await store.search(odd_waiting, page_size=4, page_token=token)
        found += [job.id for job in jobs]
        if not token:
            break
    assert found == [f"k{n:02d}" for n in range(39, 0, -2)]


async def test_index_stays_right_across_retry_and_cancel(store: JobStore) -> None:
    await _submit(store, "r1", {"word": "alpha"})
    await _fail(store, "first failure")
    assert await _ids(store, states=frozenset({JobState.FAILED}), payload_words=("alpha",)) == ["r1"]
    await store.retry("r1")
    assert await _ids(store, states=frozenset({JobState.FAILED})) == []
    assert await _ids(store, states=frozenset({JobState.WAITING}), payload_words=("alpha",)) == ["r1"]
    await _fail(store, "second different trouble")
    assert await _ids(store, error_words=("first",)) == [], "the last error's words replace the old ones"
    assert await _ids(store, error_words=("trouble",)) == ["r1"]
    await store.retry("r1")
    await store.cancel("r1")
    assert await _ids(store, states=frozenset({JobState.CANCELLED}), payload_words=("alpha",)) == ["r1"]


async def test_remove_and_retention_clean_the_index(
    store: JobStore, redis_client: Redis, key_prefix: str
) -> None:
    await _submit(store, "gone", {"word": "beta"})
    await _submit(store, "kept", {"other": "gamma"})
    await _fail(store, "oops happened")  # "gone"
    assert await store.remove("gone") is JobState.FAILED
    assert await _ids(store, payload_words=("beta",)) == []
    assert await _ids(store, error_words=("oops",)) == []
    with pytest.raises(NotFoundError):
        await store.get("gone")
    await _claim(store)  # "kept" is active now
    with pytest.raises(FailedPreconditionError, match="cancel it first"):
        await store.remove("kept")
    await _submit(store, "later", {"word": "delta"})
    assert await store.remove("later") is JobState.WAITING
    assert (await store.counts("analytics"))[JobState.WAITING] == 0, "a removed waiting job leaves the queue"
    assert not isinstance(await store.claim("host:1", "analytics", LEASE, tasks=TASKS), ClaimedJob)
    keys = await _index_keys(redis_client, key_prefix)
    assert not any(key.endswith((":beta", ":oops", ":delta")) for key in keys), keys
    assert any(key.endswith(":gamma") for key in keys), "the active job keeps its entries"


async def test_retention_removes_index_logs_and_timeline(
    store: JobStore, redis_client: Redis, key_prefix: str
) -> None:
    await _submit(store, "old", {"word": "epsilon"})
    claimed = await _claim(store)
    assert await store.write_log(claimed, "info", "working on it")
    assert (await store.finish(claimed, result=1)).state is JobState.COMPLETED
    assert await store.remove_finished("analytics", JobState.COMPLETED, max_age_ms=0) == 1
    assert await _index_keys(redis_client, key_prefix) == []
    left = [key.decode() async for key in redis_client.scan_iter(match=f"{key_prefix}:*old")]
    assert left == [], "no key of the removed job is left"


async def test_remove_and_promote_answer_a_resent_call_alike(store: JobStore) -> None:
    await _submit(store, "d1", {}, delay_ms=600_000)
    with pytest.raises(FailedPreconditionError):
        await store.retry("d1")
    promoted = await store.promote("d1")
    assert promoted.state is JobState.WAITING
    with pytest.raises(FailedPreconditionError, match="only a DELAYED job"):
        await store.promote("d1")
    assert (await _claim(store)).id == "d1", "a promoted job runs now"


async def test_promote_keeps_priority_order(store: JobStore) -> None:
    await _submit(store, "normal", {}, priority=5)
    await _submit(store, "urgent-later", {}, priority=1, delay_ms=600_000)
    await store.promote("urgent-later")
    assert (await _claim(store)).id == "urgent-later"


async def test_logs_are_capped_and_only_the_lease_writes(store: JobStore) -> None:
    capped = JobStore(store.redis, store._mux, prefix=store.prefix, log_max_lines=3, log_max_line_chars=10)
    await _submit(capped, "talky", {})
    claimed = await _claim(capped)
    kept = [await capped.write_log(claimed, "info", f"line {n} and much more text") for n in range(5)]
    assert kept == [True, True, True, False, False]
    lines, total, dropped = await capped.logs("talky", offset=1, count=10)
    assert [line.message for line in lines] == ["line 1 and", "line 2 and"]
    assert (total, dropped) == (3, 2)
    assert lines[0].attempt == 1 and lines[0].level == "info"
    await capped.finish(claimed, result=None)
    assert not await capped.write_log(claimed, "info", "too late"), "a finished attempt writes no more"


async def test_timeline_and_workers_of_attempts(store: JobStore) -> None:
    await _submit(store, "t1", {}, max_attempts=2)
    first = await _claim(store, worker="host-a:1")
    await store.finish(first, error=AttemptError(type="E", message="m", retryable=True))
    second = await _claim(store, worker="host-b:2")
    await store.finish(second, result="ok")
    job = await store.get("t1")
    assert [(t.state, t.worker) for t in job.transitions] == [
        (JobState.WAITING, ""),
        (JobState.ACTIVE, "host-a:1"),
        (JobState.WAITING, "host-a:1"),
        (JobState.ACTIVE, "host-b:2"),
        (JobState.COMPLETED, "host-b:2"),
    ]
    assert job.last_worker == "host-b:2"
    assert job.attempt_errors[0].worker == "host-a:1"
    assert all(a.at_ms <= b.at_ms for a, b in itertools.pairwise(job.transitions))


def test_payload_words_are_bounded() -> None:
    many = {f"key{n}": f"value{n}" for n in range(100)}
    assert len(payload_words(many, limit=64)) == 64


async def test_a_dead_lettered_job_is_found_by_its_error_words(store: JobStore) -> None:
    """The error reclaim writes in Lua is split like Python splits a query, so its words find it."""
    await _submit(store, "poison", {})
    claimed = await store.claim("host:9", "analytics", 0, tasks=TASKS)  # a lease that ran out at once
    assert isinstance(claimed, ClaimedJob)
    assert await store.reclaim_expired("analytics", max_deliveries=1) == (0, ["poison"])
    query = error_words("DeliveryLimitExceeded", "worker STOPPED responding", limit=8)
    assert await _ids(store, error_words=tuple(query), states=frozenset({JobState.DEAD_LETTERED})) == [
        "poison"
    ]
    job = await store.get("poison")
    assert job.attempt_errors[-1].worker == "host:9"
    assert job.transitions[-1].state is JobState.DEAD_LETTERED


async def test_the_timeline_keeps_the_last_hundred_transitions(store: JobStore) -> None:
    await _submit(store, "busy", {})
    for _ in range(60):
        await store.cancel("busy")
        await store.retry("busy")
    job = await store.get("busy")
    assert len(job.transitions) == 100
    assert job.transitions[-1].state is JobState.WAITING
    assert job.transitions[-2].state is JobState.CANCELLED
    assert job.transitions[0].at_ms <= job.transitions[-1].at_ms
