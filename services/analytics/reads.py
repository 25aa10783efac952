"""Reading the aggregates back: one event's series over a range, and the names seen."""

from __future__ import annotations

import time
from collections.abc import Callable

from services.analytics.buckets import Granularity, query_buckets
from services.analytics.events import NAME_PATTERN
from services.analytics.retention_source import RetentionSource
from services.analytics.settings import AnalyticsLimits
from services.analytics.store import AnalyticsStore, NameTotal, Series
from services.runtime.errors import InvalidArgumentError


class MetricsReader:
    def __init__(
        self,
        store: AnalyticsStore,
        limits: AnalyticsLimits,
        retention: RetentionSource,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._limits = limits
        self._retention = retention
        self._clock = clock

    async def series(
        self, event: str, granularity: Granularity | None, *, start_ms: int, end_ms: int
    ) -> Series:
        """Every bucket of [start, end), zeros where nothing was counted; an unknown event is all zeros."""
        if not event:
            raise InvalidArgumentError.for_field("event", "name the event to read")
        if len(event) > self._limits.max_name_length or not NAME_PATTERN.match(event):
            raise InvalidArgumentError.for_field(
                "event", "not an event name: a letter, then letters, digits and . _ : -"
            )
        if granularity is None:
            raise InvalidArgumentError.for_field(
                "granularity", "give one of GRANULARITY_MINUTE, GRANULARITY_HOUR, GRANULARITY_DAY"
            )
        if not start_ms or not end_ms:
            raise InvalidArgumentError.for_field("start_time", "give start_time and end_time (RFC 3339)")
        buckets = query_buckets(
            granularity,
            start_ms,
            end_ms,
            now_ms=int(self._clock() * 1000),
            retention=self._retention.current,
            max_buckets=self._limits.max_query_buckets,
        )
        return await self._store.series(event, buckets)

    async def names(self) -> list[NameTotal]:
        return await self._store.names()
