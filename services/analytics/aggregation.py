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
    # Minutes first (one dict update per event), then hours and days rolled up from the minutes.
    minute_counts: dict[tuple[int, str], int] = {}
    minute_users: dict[tuple[int, str], set[str]] = {}
    delta = BatchDelta()
    totals = delta.totals
    last_seen = delta.last_seen_ms
    for event in events:
        name = event.name
        bucket = (event.timestamp_ms // 60_000 * 60, name)
        minute_counts[bucket] = minute_counts.get(bucket, 0) + 1
        if event.user_id:
            users = minute_users.get(bucket)
            if users is None:
                minute_users[bucket] = {event.user_id}
            else:
                users.add(event.user_id)
        totals[name] = totals.get(name, 0) + 1
        if event.timestamp_ms > last_seen.get(name, -1):
            last_seen[name] = event.timestamp_ms
    for granularity in Granularity:
        for (minute, name), count in minute_counts.items():
            key = (granularity, granularity.start_of(minute), name)
            delta.counts[key] = delta.counts.get(key, 0) + count
        for (minute, name), users in minute_users.items():
            key = (granularity, granularity.start_of(minute), name)
            delta.users.setdefault(key, set()).update(users)
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
