"""What a batch adds to the aggregates: counts per event name and bucket, the users per bucket, and each
name's total and last-seen time, folded in memory so Redis gets one update per key, not one per event.

Events without a user id are counted but add no unique user.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from services.analytics.buckets import Granularity
from services.analytics.events import Event
from services.analytics.keys import AnalyticsKeys
from services.analytics_retention import AnalyticsRetention

BucketKey = tuple[Granularity, int, str]


@dataclass
class BatchDelta:
    counts: dict[BucketKey, int] = field(default_factory=dict)
    users: dict[BucketKey, set[str]] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)
    last_seen_ms: dict[str, int] = field(default_factory=dict)


def fold(events: Iterable[Event]) -> BatchDelta:
    delta = BatchDelta()
    for event in events:
        seconds = event.timestamp_ms // 1000
        for granularity in Granularity:
            bucket = (granularity, granularity.start_of(seconds), event.name)
            delta.counts[bucket] = delta.counts.get(bucket, 0) + 1
            if event.user_id:
                delta.users.setdefault(bucket, set()).add(event.user_id)
        delta.totals[event.name] = delta.totals.get(event.name, 0) + 1
        delta.last_seen_ms[event.name] = max(delta.last_seen_ms.get(event.name, 0), event.timestamp_ms)
    return delta


def script_argument(delta: BatchDelta, keys: AnalyticsKeys, retention: AnalyticsRetention) -> str:
    """The delta as apply.lua reads it: key suffixes (after `keys.base`) with increments and expiry times."""
    base = len(keys.base)

    def suffix(kind: str, bucket: BucketKey) -> str:
        granularity, start, name = bucket
        full = keys.count(granularity, start, name) if kind == "c" else keys.users(granularity, start, name)
        return full[base:]

    counts = [
        [suffix("c", bucket), count, bucket[0].expires_at(bucket[1], retention)]
        for bucket, count in delta.counts.items()
    ]
    users = [
        [suffix("u", bucket), bucket[0].expires_at(bucket[1], retention), sorted(members)]
        for bucket, members in delta.users.items()
    ]
    names = [[name, total, delta.last_seen_ms[name]] for name, total in delta.totals.items()]
    return json.dumps({"c": counts, "u": users, "n": names}, separators=(",", ":"))
