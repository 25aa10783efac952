"""The query result cache: a finished query's first page, schema and totals in Redis, keyed by what makes
two queries the same.

Two queries are the same when their normalised SQL (the guard's), their parameters in canonical form and
their default dataset are. The key is `<prefix>:query:cache:<sha256 of those>`: nothing a caller writes
is ever part of a key as text. An entry is one JSON string with a TTL; it holds what RunQuery answers
(schema, the first page, `total_rows`) and the job id and page token that the following pages are read
with (`GetQueryResults`). An entry is bounded in size: a larger result is served, not cached, and the
caller is told why.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from redis.asyncio import Redis

from services.bigquery import cache_metrics

# The longest a caller may ask a result to be kept (the admin setting's own bound).
MAX_CACHE_TTL_SECONDS = 7 * 86_400
TOO_LARGE = "too_large"
TTL_ZERO = "ttl_zero"


@dataclass(frozen=True)
class QueryIdentity:
    """What makes two queries the same result."""

    normalized_sql: str
    """The guard's (`sql_guard.Inspection.normalized_sql`)."""
    parameters: str
    """The parameters in canonical form (`parameters.canonical`: sorted by name, values typed)."""
    default_dataset: str

    def digest(self) -> str:
        canonical = json.dumps(
            [self.normalized_sql, self.parameters, self.default_dataset],
            separators=(",", ":"),
            ensure_ascii=False,
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class QueryResult:
    """A finished query's answer as RunQuery gives it: the first page and what reads the next ones."""

    job_id: str
    schema: Sequence[Mapping[str, Any]]
    """Each column as `{"name", "type", "mode", "fields"}` (the proto's SchemaField as JSON)."""
    rows: Sequence[Mapping[str, Any]]
    total_rows: int
    next_page_token: str

    def encode(self) -> bytes:
        return json.dumps(
            {
                "job_id": self.job_id,
                "schema": list(self.schema),
                "rows": list(self.rows),
                "total_rows": self.total_rows,
                "next_page_token": self.next_page_token,
            },
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode()

    @classmethod
    def decode(cls, raw: bytes) -> QueryResult:
        data = json.loads(raw)
        return cls(
            job_id=str(data["job_id"]),
            schema=list(data["schema"]),
            rows=list(data["rows"]),
            total_rows=int(data["total_rows"]),
            next_page_token=str(data["next_page_token"]),
        )


@dataclass(frozen=True)
class StoreOutcome:
    stored: bool
    reason: str = ""
    """Why not, for the caller (empty when stored)."""
    reason_code: str = ""


class ResultCache:
    """Cached results in Redis; every call may raise redis-py's errors (the call scope answers 503)."""

    def __init__(self, redis: Redis, *, prefix: str, max_entry_bytes: int) -> None:
        self._redis = redis
        self._prefix = prefix
        self.max_entry_bytes = max_entry_bytes

    def key_for(self, identity: QueryIdentity) -> str:
        return f"{self._prefix}:query:cache:{identity.digest()}"

    async def get(self, key: str, *, count: bool = True) -> QueryResult | None:
        """The cached result under `key`; `count=False` for a second look within one call (not a hit or
        a miss of its own in the metrics)."""
        raw = cast(bytes | None, await self._redis.get(key))
        result = None
        if raw is not None:
            try:
                result = QueryResult.decode(raw)
            except (ValueError, KeyError, TypeError):
                # Not an entry this code wrote (an older layout, a hand edit): a miss, replaced by the
                # next put.
                result = None
        if count:
            if result is None:
                cache_metrics.observe_miss()
            else:
                cache_metrics.observe_hit(len(cast(bytes, raw)))
        return result

    async def put(self, key: str, result: QueryResult, *, ttl_seconds: int) -> StoreOutcome:
        """Keeps `result` for `ttl_seconds`; a result over the entry bound, or a TTL of 0, is not kept."""
        if ttl_seconds <= 0:
            cache_metrics.observe_skipped(TTL_ZERO)
            return StoreOutcome(
                stored=False,
                reason="the cache TTL is 0 (bigquery.cache_ttl_seconds): results are not cached",
                reason_code=TTL_ZERO,
            )
        encoded = result.encode()
        if len(encoded) > self.max_entry_bytes:
            cache_metrics.observe_skipped(TOO_LARGE)
            return StoreOutcome(
                stored=False,
                reason=(
                    f"the result's first page is {len(encoded):,} bytes, over the cache's entry bound of "
                    f"{self.max_entry_bytes:,} bytes: a smaller page_size makes it cacheable"
                ),
                reason_code=TOO_LARGE,
            )
        await self._redis.set(key, encoded, ex=min(ttl_seconds, MAX_CACHE_TTL_SECONDS))
        cache_metrics.observe_stored(len(encoded))
        return StoreOutcome(stored=True)
