"""Analytics state in Redis: accepted batches waiting for their jobs, the aggregates, and reading them.

Writes are Lua scripts (services/analytics/lua/), each atomic; reads are pipelines. Key layout:
services/analytics/keys.py and docs/key-layout.md.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from services.analytics.buckets import BucketRange
from services.analytics.events import Event
from services.analytics.keys import AnalyticsKeys

LUA_DIR = Path(__file__).with_name("lua")


class StoreOutcome(enum.Enum):
    STORED = "stored"
    EXISTS = "exists"
    APPLIED = "applied"
    TOO_MANY_NAMES = "too_many_names"


@dataclass(frozen=True)
class StoreResult:
    outcome: StoreOutcome
    count: int
    """The batch's event count (STORED, EXISTS, APPLIED), or the names already known (TOO_MANY_NAMES)."""


@dataclass(frozen=True)
class Bucket:
    start: int
    count: int
    unique_users: int


@dataclass(frozen=True)
class Series:
    buckets: tuple[Bucket, ...]
    unique_users: int


@dataclass(frozen=True)
class NameTotal:
    name: str
    total: int
    last_seen_ms: int


def encode_events(events: Sequence[Event]) -> str:
    return json.dumps(
        [[e.name, e.user_id, e.timestamp_ms, e.properties] for e in events], separators=(",", ":")
    )


def decode_events(raw: bytes | str) -> list[Event]:
    return [Event(name, user, int(ts), props or {}) for name, user, ts, props in json.loads(raw)]


class AnalyticsStore:
    def __init__(self, redis: Redis, keys: AnalyticsKeys) -> None:
        self._redis = redis
        self.keys = keys
        self._ingest = redis.register_script((LUA_DIR / "ingest.lua").read_text())
        self._apply = redis.register_script((LUA_DIR / "apply.lua").read_text())
        self._exported = redis.register_script((LUA_DIR / "exported.lua").read_text())

    async def store_batch(
        self,
        batch_id: str,
        events: Sequence[Event],
        *,
        ttl_seconds: int,
        max_names: int,
        consumers: int,
    ) -> StoreResult:
        """Keeps the batch for `consumers` jobs, unless its id was seen before; reserves its names."""
        names = sorted({event.name for event in events})
        reply = await self._ingest(
            keys=[self.keys.base],
            args=[batch_id, encode_events(events), len(events), ttl_seconds, max_names, consumers, *names],
        )
        outcome, count = reply
        return StoreResult(
            StoreOutcome(outcome.decode() if isinstance(outcome, bytes) else outcome), int(count)
        )

    async def discard_batch(self, batch_id: str) -> None:
        """Forgets a kept batch no job will read (its job could not be submitted)."""
        await self._redis.delete(self.keys.batch(batch_id))

    async def load_batch(self, batch_id: str) -> list[Event] | None:
        """The batch's events; None once no job needs them any more (or they expired)."""
        raw = await self._redis.hget(self.keys.batch(batch_id), "events")
        return None if raw is None else decode_events(raw)

    async def is_applied(self, batch_id: str) -> bool:
        return bool(await self._redis.exists(self.keys.applied(batch_id)))

    async def apply(self, batch_id: str, delta: str, *, marker_ttl_seconds: int) -> bool:
        """Applies a batch's delta (aggregation.script_argument) once; False when it had been already."""
        applied = await self._apply(keys=[self.keys.base], args=[batch_id, marker_ttl_seconds, delta])
        return bool(applied)

    async def is_exported(self, batch_id: str) -> bool:
        return bool(await self._redis.exists(self.keys.exported(batch_id)))

    async def mark_exported(self, batch_id: str, *, marker_ttl_seconds: int) -> bool:
        done = await self._exported(keys=[self.keys.base], args=[batch_id, marker_ttl_seconds])
        return bool(done)

    async def series(self, name: str, buckets: BucketRange) -> Series:
        """Counts and unique users per bucket (missing ones as zeros) and the unique users over them all."""
        granularity = buckets.granularity
        count_keys = [self.keys.count(granularity, start, name) for start in buckets.starts]
        user_keys = [self.keys.users(granularity, start, name) for start in buckets.starts]
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.mget(count_keys)
            for key in user_keys:
                pipe.pfcount(key)
            pipe.pfcount(*user_keys)
            replies: list[Any] = await pipe.execute()
        counts = replies[0]
        uniques = replies[1:-1]
        return Series(
            buckets=tuple(
                Bucket(start, int(count or 0), int(unique))
                for start, count, unique in zip(buckets.starts, counts, uniques, strict=True)
            ),
            unique_users=int(replies[-1]),
        )

    async def names(self) -> list[NameTotal]:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.keys.totals)
            pipe.hgetall(self.keys.last_seen)
            totals, seen = await pipe.execute()
        return sorted(
            (NameTotal(name.decode(), int(total), int(seen.get(name, 0))) for name, total in totals.items()),
            key=lambda entry: entry.name,
        )
