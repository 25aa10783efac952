"""The query result cache, single flight and the completion watch against a real Redis."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from devstack.redis import RedisServer
from services.bigquery import parameters
from services.bigquery.completion_watch import CompletionWatch
from services.bigquery.parameters import QueryParameterInput
from services.bigquery.result_cache import QueryIdentity, QueryResult, ResultCache
from services.bigquery.single_flight import SingleFlight
from services.runtime.redis_pool import create_redis
from services.runtime.settings import RedisSettings
from tests.polling import eventually


def _identity(sql: str = "SELECT 1", dataset: str = "ds", **values: object) -> QueryIdentity:
    wire = [QueryParameterInput(name, "INT64", value) for name, value in values.items()]
    return QueryIdentity(sql, parameters.canonical(parameters.from_wire(wire)), dataset)


def _result(rows: int = 2, job_id: str = "query-1") -> QueryResult:
    return QueryResult(
        job_id=job_id,
        schema=[{"name": "n", "type": "INT64", "mode": "NULLABLE"}],
        rows=[{"n": str(index)} for index in range(rows)],
        total_rows=rows,
        next_page_token="",
    )


def test_identical_queries_share_a_key_and_different_ones_do_not() -> None:
    given = [QueryParameterInput("a", "INT64", "1"), QueryParameterInput("b", "ARRAY<STRING>", ["x"])]
    # Named parameters in another order, the type spelled otherwise, the number as a number.
    reordered = [QueryParameterInput("b", "array< string >", ["x"]), QueryParameterInput("a", "INT64", 1)]
    same = QueryIdentity("SELECT @a, @b", parameters.canonical(parameters.from_wire(given)), "ds")
    also = QueryIdentity("SELECT @a, @b", parameters.canonical(parameters.from_wire(reordered)), "ds")
    assert same.digest() == also.digest()
    others = {
        _identity("SELECT @a", a="1").digest(),
        _identity("SELECT @a", a="2").digest(),
        _identity("SELECT @a", dataset="other", a="1").digest(),
        _identity("SELECT @a + 0", a="1").digest(),
    }
    assert len(others) == 4


def _metric(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


async def test_a_result_is_kept_for_its_ttl_and_counted(redis_client: Redis, key_prefix: str) -> None:
    cache = ResultCache(redis_client, prefix=key_prefix, max_entry_bytes=64 * 1024)
    key = cache.key_for(_identity())
    names = ("hits", "misses", "hit_bytes", "stored_bytes")
    before = {name: _metric(f"switchboard_query_cache_{name}_total") for name in names}
    assert await cache.get(key) is None
    outcome = await cache.put(key, _result(), ttl_seconds=90)
    assert outcome.stored and outcome.reason == ""
    assert await cache.get(key) == _result()
    assert 85 <= await redis_client.ttl(key) <= 90
    assert key.startswith(f"{key_prefix}:query:cache:")
    size = len(_result().encode())
    seen = {name: _metric(f"switchboard_query_cache_{name}_total") - before[name] for name in names}
    assert seen == {"hits": 1, "misses": 1, "hit_bytes": size, "stored_bytes": size}


async def test_a_result_over_the_bound_is_not_kept_and_says_why(redis_client: Redis, key_prefix: str) -> None:
    cache = ResultCache(redis_client, prefix=key_prefix, max_entry_bytes=1024)
    key = cache.key_for(_identity())
    large = _result(rows=500)
    outcome = await cache.put(key, large, ttl_seconds=60)
    assert not outcome.stored
    assert "1,024 bytes" in outcome.reason and f"{len(large.encode()):,} bytes" in outcome.reason
    assert await redis_client.exists(key) == 0
    assert (await cache.put(key, _result(rows=1), ttl_seconds=60)).stored


async def test_a_ttl_of_zero_caches_nothing(redis_client: Redis, key_prefix: str) -> None:
    cache = ResultCache(redis_client, prefix=key_prefix, max_entry_bytes=64 * 1024)
    key = cache.key_for(_identity())
    outcome = await cache.put(key, _result(), ttl_seconds=0)
    assert not outcome.stored and "TTL is 0" in outcome.reason
    assert await redis_client.exists(key) == 0


async def test_an_entry_this_code_did_not_write_is_a_miss(redis_client: Redis, key_prefix: str) -> None:
    cache = ResultCache(redis_client, prefix=key_prefix, max_entry_bytes=64 * 1024)
    key = cache.key_for(_identity())
    await redis_client.set(key, json.dumps({"rows": []}))
    assert await cache.get(key) is None


@pytest.fixture
async def second_client(redis_server: RedisServer) -> AsyncIterator[Redis]:
    """Another process's connection pool, as a second service instance has."""
    client = create_redis(RedisSettings(port=redis_server.port))
    yield client
    await client.aclose()


async def test_concurrent_identical_misses_across_instances_share_one_claim(
    redis_client: Redis, second_client: Redis, key_prefix: str
) -> None:
    instances = [
        SingleFlight(client, prefix=key_prefix, claim_seconds=30) for client in (redis_client, second_client)
    ]
    flights = await asyncio.gather(
        *(instances[index % 2].join("digest", f"job-{index}") for index in range(10))
    )
    owners = [flight for flight in flights if flight.owner]
    assert len(owners) == 1
    assert {flight.job_id for flight in flights} == {owners[0].job_id}
    # Another query is another flight.
    assert (await instances[0].join("other", "job-x")).owner


async def test_a_claim_is_released_by_its_own_job_only(redis_client: Redis, key_prefix: str) -> None:
    flights = SingleFlight(redis_client, prefix=key_prefix, claim_seconds=30)
    first = await flights.join("digest", "job-1")
    assert not await flights.release("digest", "job-2")
    assert (await flights.join("digest", "job-3")).job_id == first.job_id
    assert await flights.release("digest", "job-1")
    again = await flights.join("digest", "job-4")
    assert again.owner and again.job_id == "job-4"


async def test_a_dead_claimants_claim_expires(redis_client: Redis, key_prefix: str) -> None:
    flights = SingleFlight(redis_client, prefix=key_prefix, claim_seconds=0.2)
    assert (await flights.join("digest", "job-1")).owner
    # The claimant never releases it (it died): the claim ends by itself and the next miss owns a new one.
    taken = await eventually(
        lambda: flights.join("digest", "job-2"),
        lambda flight: flight.owner,
        timeout=10,
        what="a new claim after the first expired",
    )
    assert taken.job_id == "job-2"


async def test_the_watch_wakes_the_waiters_of_the_job_announced(redis_client: Redis, key_prefix: str) -> None:
    watch = CompletionWatch(redis_client, lambda job_id: f"{key_prefix}:[q]:done:{job_id}")
    task = asyncio.create_task(watch.follow())
    try:
        await asyncio.wait_for(watch.listening.wait(), timeout=10)
        with watch.waiter("job-1") as first, watch.waiter("job-1") as second, watch.waiter("job-2") as other:
            # The pattern's glob characters are literal: a look-alike channel wakes nobody.
            await redis_client.publish(f"{key_prefix}:q:done:job-2", "COMPLETED")
            await redis_client.publish(f"{key_prefix}:[q]:done:job-1", "COMPLETED")
            # Notices arrive in order: once job-1's waiters are awake, the look-alike was seen before.
            await asyncio.wait_for(asyncio.gather(first, second), timeout=10)
            assert not other.done()
        assert watch.waiting == 0
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
