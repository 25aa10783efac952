"""Prometheus metrics of the query result cache: hits, misses, bytes served and stored, results not kept."""

from __future__ import annotations

from prometheus_client import Counter

HITS = Counter("switchboard_query_cache_hits_total", "RunQuery calls answered from the result cache.")
MISSES = Counter(
    "switchboard_query_cache_misses_total", "RunQuery calls that found no cached result (bypasses excluded)."
)
HIT_BYTES = Counter("switchboard_query_cache_hit_bytes_total", "Bytes of cached results read to answer hits.")
STORED_BYTES = Counter("switchboard_query_cache_stored_bytes_total", "Bytes of results written to the cache.")
SKIPPED = Counter(
    "switchboard_query_cache_skipped_total",
    "Results served but not cached, by why (too_large, ttl_zero).",
    ["reason"],
)


def observe_hit(size: int) -> None:
    HITS.inc()
    HIT_BYTES.inc(size)


def observe_miss() -> None:
    MISSES.inc()


def observe_stored(size: int) -> None:
    STORED_BYTES.inc(size)


def observe_skipped(reason: str) -> None:
    SKIPPED.labels(reason).inc()
