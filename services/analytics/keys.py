"""The analytics Redis key layout (docs/key-layout.md, "Analytics", is the one place that lists it).

Every key shares the hash tag `{analytics}`, so the one script that applies a batch (its counts, its
HyperLogLogs, its marker) touches one slot on Redis Cluster. A client-chosen string (an event name, a
batch id) is only ever the last part of a key, after a fixed segment naming the key's kind, and neither
may hold braces: keys cannot collide and the tag never changes.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.analytics.buckets import Granularity


@dataclass(frozen=True)
class AnalyticsKeys:
    prefix: str

    @property
    def base(self) -> str:
        """What every key starts with; KEYS[1] of the scripts."""
        return f"{self.prefix}:{{analytics}}:"

    def batch(self, batch_id: str) -> str:
        return f"{self.base}batch:{batch_id}"

    def applied(self, batch_id: str) -> str:
        return f"{self.base}applied:{batch_id}"

    def exported(self, batch_id: str) -> str:
        return f"{self.base}exported:{batch_id}"

    def count(self, granularity: Granularity, bucket_start: int, name: str) -> str:
        return f"{self.base}c:{granularity.code}:{bucket_start}:{name}"

    def users(self, granularity: Granularity, bucket_start: int, name: str) -> str:
        return f"{self.base}u:{granularity.code}:{bucket_start}:{name}"

    @property
    def known_names(self) -> str:
        return f"{self.base}names:known"

    @property
    def totals(self) -> str:
        return f"{self.base}names:total"

    @property
    def last_seen(self) -> str:
        return f"{self.base}names:seen"
