"""The job store on a Redis in cluster mode: every script's keys hash to one slot, or Redis refuses it.

A one-node cluster (all 16,384 slots on one `redis-server --cluster-enabled yes`) answers CROSSSLOT for
any script or command whose declared keys span slots, as a real cluster would. The store's whole life of
a job runs on it here. (Keys a script builds from an index member are checked by
test_job_store.py::test_every_key_carries_its_queues_hash_tag.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis

from devstack.ports import free_port
from devstack.processes import ManagedProcess
from services.jobs.model import AttemptError, JobState
from services.jobs.store import ClaimedJob, JobStore
from services.runtime.redis_mux import RedisMux
from services.runtime.redis_pool import create_redis
from services.runtime.settings import RedisSettings

TASKS = ["diagnostics.echo"]


@pytest.fixture
def cluster_port(tmp_path: Path) -> Iterator[int]:
    port = free_port()
    process = ManagedProcess(
        "redis-cluster-node",
        [
            "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path),
            "--save", "", "--cluster-enabled", "yes", "--cluster-config-file", str(tmp_path / "nodes.conf"),
        ],
        log_path=tmp_path / "redis.log",
    )  # fmt: skip
    process.start()
    client = redis.Redis(port=port, socket_timeout=2)

    def answering() -> bool | None:
        try:
            return bool(client.ping()) or None
        except redis.RedisError:
            return None

    process.wait_until(answering, timeout=10, what="PING")
    client.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)  # type: ignore[no-untyped-call]
    process.wait_until(
        lambda: b"cluster_state:ok" in client.execute_command("CLUSTER", "INFO") or None,  # type: ignore[no-untyped-call]
        timeout=15,
        what="cluster_state:ok",
    )
    client.close()
    yield port
    process.stop()


@pytest.fixture
async def cluster_store(cluster_port: int) -> AsyncIterator[JobStore]:
    settings = RedisSettings(port=cluster_port)
    client, mux = create_redis(settings), RedisMux(settings)
    yield JobStore(client, mux, prefix="sb")
    await mux.aclose()
    await client.aclose()


async def test_a_job_lives_its_whole_life_on_a_cluster(cluster_store: JobStore) -> None:
    store = cluster_store
    with pytest.raises(redis.exceptions.ResponseError, match="hash to the same slot"):
        # The check is real: keys of two queues in one command are refused.
        await store.redis.delete("sb:{analytics}:wait", "sb:{bigquery}:wait")
    for queue in ("analytics", "bigquery", "ratelimit"):
        for job_id in (f"{queue}-a", f"{queue}-b"):
            await store.submit(
                queue=queue, task="diagnostics.echo", payload={}, message=b"{}", job_id=job_id,
                max_attempts=2,
            )  # fmt: skip
        first = await store.claim("w1", queue, 30_000, tasks=TASKS)
        assert isinstance(first, ClaimedJob)
        assert await store.heartbeat(queue, [first], 30_000) == {}
        assert await store.set_progress(first, 50)
        error = AttemptError(type="RetryableError", message="x", retryable=True)
        assert (await store.finish(first, error=error)).state is JobState.WAITING
        again = await store.claim("w1", queue, 30_000, tasks=TASKS)
        assert isinstance(again, ClaimedJob)
        assert await store.release([again]) == 1
        lost = await store.claim("w1", queue, 0, tasks=TASKS)
        assert isinstance(lost, ClaimedJob)
        assert await store.reclaim_expired(queue, max_deliveries=5) == (1, [])
        done = await store.claim("w2", queue, 30_000, tasks=TASKS)
        assert isinstance(done, ClaimedJob)
        assert (await store.finish(done, result={"ok": True})).state is JobState.COMPLETED
        await store.cancel(f"{queue}-b") if (
            await store.get(f"{queue}-b")
        ).state is not JobState.ACTIVE else None
        await store.set_paused(queue, True)
        await store.set_paused(queue, False)
        assert (await store.counts(queue))[JobState.COMPLETED] == 1
        assert await store.remove_finished(queue, JobState.COMPLETED, keep_count=0) == 1
    listed, _ = await store.list_jobs(queues=["analytics", "bigquery", "ratelimit"], state=None)
    assert len(listed) == 3
    assert {job.state for job in listed} == {JobState.CANCELLED}
    assert (await store.retry(listed[0].id)).state is JobState.WAITING
    await store.wait_for_work(["analytics"], 0.01)
