"""Time buckets: the granularities, which bucket a moment falls in, and which buckets a query reads.

All in UTC epoch seconds; a bucket is named by the second it starts. Minutes, hours and days divide the
epoch evenly (no leap seconds in Unix time), so a bucket's start is the time rounded down.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from services.analytics_retention import AnalyticsRetention
from services.runtime.errors import InvalidArgumentError


class Granularity(enum.Enum):
    MINUTE = ("m", 60)
    HOUR = ("h", 3600)
    DAY = ("d", 86_400)

    def __init__(self, code: str, seconds: int) -> None:
        self.code = code
        self.seconds = seconds

    @property
    def label(self) -> str:
        """As the API names it."""
        return f"GRANULARITY_{self.name}"

    def start_of(self, epoch_seconds: float) -> int:
        """The start of the bucket `epoch_seconds` falls in."""
        return int(epoch_seconds // self.seconds) * self.seconds

    def retention_seconds(self, retention: AnalyticsRetention) -> int:
        if self is Granularity.MINUTE:
            return retention.minute_retention_seconds
        if self is Granularity.HOUR:
            return retention.hour_retention_seconds
        return retention.day_retention_seconds

    def expires_at(self, bucket_start: int, retention: AnalyticsRetention) -> int:
        """When a bucket's keys go (epoch seconds): its retention after it ends."""
        return bucket_start + self.seconds + self.retention_seconds(retention)


@dataclass(frozen=True)
class BucketRange:
    granularity: Granularity
    starts: tuple[int, ...]


def query_buckets(
    granularity: Granularity,
    start_ms: int,
    end_ms: int,
    *,
    now_ms: int,
    retention: AnalyticsRetention,
    max_buckets: int,
) -> BucketRange:
    """The buckets that cover [start, end) (epoch ms): from the one `start` falls in to the last one
    starting before `end`. Too many, or a range reaching back past the granularity's retention →
    InvalidArgumentError."""
    if end_ms <= start_ms:
        raise InvalidArgumentError.for_field("end_time", "must be after start_time")
    first = granularity.start_of(start_ms // 1000)
    last = granularity.start_of((end_ms - 1) // 1000)
    count = (last - first) // granularity.seconds + 1
    if count > max_buckets:
        raise InvalidArgumentError.for_field(
            "end_time",
            f"the range holds {count} {granularity.name.lower()} buckets, over the limit of "
            f"{max_buckets}; "
            "shorten the range or use a coarser granularity",
        )
    now_seconds = now_ms // 1000
    start_seconds = start_ms // 1000
    oldest_kept = granularity.start_of(now_seconds) - granularity.retention_seconds(retention)
    if first < oldest_kept:
        coarser = [
            g
            for g in Granularity
            if g.seconds > granularity.seconds
            and g.start_of(start_seconds) >= g.start_of(now_seconds) - g.retention_seconds(retention)
        ]
        advice = f"use {coarser[0].label}" if coarser else "no granularity keeps data that old"
        raise InvalidArgumentError.for_field(
            "granularity",
            f"{granularity.label} buckets are kept {granularity.retention_seconds(retention)} s and "
            f"start_time is older; {advice}",
        )
    return BucketRange(granularity, tuple(range(first, last + 1, granularity.seconds)))
