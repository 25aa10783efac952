"""A queue's per-minute metrics history: what the scripts record, and the percentiles read from it.

`claim.lua` and `finish.lua` count into one hash per queue and minute (`P:{q}:m:<minute start ms>`, kept
26 hours): `started`, `completed`, `failed`, and two latency histograms over the fixed bounds below, `w<i>`
(ready to start) and `r<i>` (run time of the attempts that ended). Bucket `i` (1-based) holds latencies in
(bound[i-1], bound[i]] ms, bucket 1 from 0, the last one everything above the largest bound. A percentile
is read from the buckets by linear interpolation inside the bucket it falls in: at most one bucket's width
off, with a fixed cost per minute whatever the traffic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from redis.asyncio import Redis

from services.jobs.keys import QueueKeys

# The same bounds as LATENCY_BOUNDS_MS in lua/prelude.lua (a unit test compares them).
LATENCY_BOUNDS_MS: tuple[int, ...] = (
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000, 60000, 120000, 300000, 600000,
    1800000, 3600000,
)  # fmt: skip
MINUTE_MS = 60_000
MAX_RANGE_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class MinuteMetrics:
    minute_ms: int
    started: int = 0
    completed: int = 0
    failed: int = 0
    wait_p50_ms: float = 0.0
    wait_p95_ms: float = 0.0
    run_p50_ms: float = 0.0
    run_p95_ms: float = 0.0


def percentile(counts: Sequence[int], fraction: float) -> float:
    """The `fraction` (0-1) percentile of a histogram over LATENCY_BOUNDS_MS (one count per bucket, the
    overflow last); 0.0 for an empty one. Above the largest bound it answers that bound."""
    total = sum(counts)
    if total <= 0:
        return 0.0
    rank = fraction * total
    below = 0
    for index, count in enumerate(counts):
        if count > 0 and below + count >= rank:
            lower = 0.0 if index == 0 else float(LATENCY_BOUNDS_MS[index - 1])
            if index >= len(LATENCY_BOUNDS_MS):
                return lower
            upper = float(LATENCY_BOUNDS_MS[index])
            return lower + (upper - lower) * max(rank - below, 0.0) / count
        below += count
    return float(LATENCY_BOUNDS_MS[-1])


def minute_from_fields(minute_ms: int, fields: Mapping[str, str]) -> MinuteMetrics:
    def histogram(prefix: str) -> list[int]:
        return [int(fields.get(f"{prefix}{i}", 0)) for i in range(1, len(LATENCY_BOUNDS_MS) + 2)]

    wait, run = histogram("w"), histogram("r")
    return MinuteMetrics(
        minute_ms=minute_ms,
        started=int(fields.get("started", 0)),
        completed=int(fields.get("completed", 0)),
        failed=int(fields.get("failed", 0)),
        wait_p50_ms=percentile(wait, 0.5),
        wait_p95_ms=percentile(wait, 0.95),
        run_p50_ms=percentile(run, 0.5),
        run_p95_ms=percentile(run, 0.95),
    )


class QueueHistory:
    """Reads the history; the scripts write it."""

    def __init__(self, redis: Redis, *, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix

    async def now_ms(self) -> int:
        """The Redis server's clock, which stamps the minutes."""
        seconds, micros = await self._redis.time()
        return int(seconds) * 1000 + int(micros) // 1000

    async def minutes(self, queue: str, start_ms: int, end_ms: int) -> list[MinuteMetrics]:
        """Every minute from the one holding `start_ms` to the one holding `end_ms`, oldest first."""
        keys = QueueKeys(self._prefix, queue)
        first = start_ms - start_ms % MINUTE_MS
        starts = list(range(first, end_ms + 1, MINUTE_MS))
        async with self._redis.pipeline(transaction=False) as pipe:
            for minute in starts:
                pipe.hgetall(keys.minute(minute))
            replies = await pipe.execute()
        return [
            minute_from_fields(minute, {_text(k): _text(v) for k, v in raw.items()})
            for minute, raw in zip(starts, replies, strict=True)
        ]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
