"""The analytics scripts against a real Redis: a batch kept once, counted exactly once, released when done."""

from __future__ import annotations

import time
import uuid

from redis.asyncio import Redis

from services.analytics.aggregation import fold, script_argument
from services.analytics.buckets import Granularity, query_buckets
from services.analytics.events import Event
from services.analytics.keys import AnalyticsKeys
from services.analytics.store import AnalyticsStore, StoreOutcome
from services.analytics_retention import AnalyticsRetention

RETENTION = AnalyticsRetention()


def _store(redis_client: Redis) -> AnalyticsStore:
    return AnalyticsStore(redis_client, AnalyticsKeys(f"test-{uuid.uuid4().hex[:12]}"))


def _events(count: int, *, name: str = "signup", at_ms: int | None = None) -> list[Event]:
    at = at_ms if at_ms is not None else int(time.time() * 1000)
    return [Event(name, f"user-{i % 7}", at, {"i": i}) for i in range(count)]


async def _keep(
    store: AnalyticsStore, batch: str, events: list[Event], *, consumers: int = 1
) -> StoreOutcome:
    kept = await store.store_batch(batch, events, ttl_seconds=600, max_names=10, consumers=consumers)
    return kept.outcome


async def _apply(store: AnalyticsStore, batch: str) -> bool:
    events = await store.load_batch(batch)
    assert events is not None
    return await store.apply(
        batch, script_argument(fold(events), store.keys, RETENTION), marker_ttl_seconds=600
    )


async def test_a_batch_applied_twice_is_counted_once(redis_client: Redis) -> None:
    store = _store(redis_client)
    now_ms = int(time.time() * 1000)
    events = _events(50, at_ms=now_ms)
    assert await _keep(store, "b1", events) is StoreOutcome.STORED
    argument = script_argument(fold(events), store.keys, RETENTION)

    assert await store.apply("b1", argument, marker_ttl_seconds=600)
    assert not await store.apply("b1", argument, marker_ttl_seconds=600), "a redelivery finds the marker"

    hour = query_buckets(
        Granularity.HOUR, now_ms, now_ms + 1, now_ms=now_ms, retention=RETENTION, max_buckets=10
    )
    series = await store.series("signup", hour)
    assert [(b.count, b.unique_users) for b in series.buckets] == [(50, 7)]
    assert series.unique_users == 7
    [total] = await store.names()
    assert (total.name, total.total, total.last_seen_ms) == ("signup", 50, now_ms)
    assert await store.load_batch("b1") is None, "its only job done, the events are released"
    assert await store.is_applied("b1")


async def test_a_repeated_batch_id_keeps_the_first_batch(redis_client: Redis) -> None:
    store = _store(redis_client)
    assert await _keep(store, "b1", _events(3)) is StoreOutcome.STORED
    again = await store.store_batch("b1", _events(9), ttl_seconds=600, max_names=10, consumers=1)
    assert (again.outcome, again.count) == (StoreOutcome.EXISTS, 3)
    events = await store.load_batch("b1")
    assert events is not None and len(events) == 3
    await _apply(store, "b1")
    after = await store.store_batch("b1", _events(9), ttl_seconds=600, max_names=10, consumers=1)
    assert (after.outcome, after.count) == (StoreOutcome.APPLIED, 3), "counted already: not kept again"
    assert await store.load_batch("b1") is None


async def test_distinct_names_are_bounded_and_a_refused_batch_reserves_none(redis_client: Redis) -> None:
    store = _store(redis_client)
    names = [f"event-{i}" for i in range(8)]
    batch = [event for name in names for event in _events(1, name=name)]
    assert await _keep(store, "first", batch) is StoreOutcome.STORED
    over = [event for i in range(3) for event in _events(1, name=f"new-{i}")]
    refused = await store.store_batch("second", over, ttl_seconds=600, max_names=10, consumers=1)
    assert (refused.outcome, refused.count) == (StoreOutcome.TOO_MANY_NAMES, 8)
    assert await store.load_batch("second") is None
    known_again = [*_events(2, name="event-3"), *_events(1, name="new-0"), *_events(1, name="new-1")]
    assert await _keep(store, "third", known_again) is StoreOutcome.STORED, "2 new names fit in 10"


async def test_events_stay_until_both_the_aggregate_and_the_export_are_done(redis_client: Redis) -> None:
    store = _store(redis_client)
    assert await _keep(store, "b1", _events(4), consumers=2) is StoreOutcome.STORED
    assert await store.mark_exported("b1", marker_ttl_seconds=600)
    assert not await store.mark_exported("b1", marker_ttl_seconds=600)
    assert await store.load_batch("b1") is not None, "the aggregate still needs them"
    assert await _apply(store, "b1")
    assert await store.load_batch("b1") is None
    assert await redis_client.ttl(store.keys.applied("b1")) > 0


async def test_bucket_keys_expire_at_their_retention_after_the_bucket(redis_client: Redis) -> None:
    store = _store(redis_client)
    now_s = int(time.time())
    assert await _keep(store, "b1", _events(2, at_ms=now_s * 1000)) is StoreOutcome.STORED
    await _apply(store, "b1")
    minute = Granularity.MINUTE.start_of(now_s)
    expires = await redis_client.expiretime(store.keys.count(Granularity.MINUTE, minute, "signup"))
    assert expires == minute + 60 + RETENTION.minute_retention_seconds
    expires = await redis_client.expiretime(store.keys.users(Granularity.MINUTE, minute, "signup"))
    assert expires == minute + 60 + RETENTION.minute_retention_seconds


async def test_empty_buckets_read_as_zeros(redis_client: Redis) -> None:
    store = _store(redis_client)
    now_ms = int(time.time() * 1000)
    minutes = query_buckets(
        Granularity.MINUTE, now_ms - 600_000, now_ms, now_ms=now_ms, retention=RETENTION, max_buckets=100
    )
    series = await store.series("never-seen", minutes)
    assert len(series.buckets) in (10, 11)
    assert all(b.count == 0 and b.unique_users == 0 for b in series.buckets)
    assert series.unique_users == 0
