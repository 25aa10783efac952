"""The audit trail: every admin action, allowed or denied, with who, when, what, on what, and from where.

Written by every service that performs an admin action (and by the gateway's authorizer for refusals);
read by `GET /api/audit`. Bounded: the newest `max_entries` are kept.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import cast

from redis.asyncio import Redis

from services.runtime.errors import InvalidArgumentError


class Outcome(enum.StrEnum):
    ALLOWED = "allowed"
    DENIED = "denied"
    FAILED = "failed"


@dataclass(frozen=True)
class AuditEntry:
    time_ms: int
    principal: str
    """`Principal.label` of the caller (`admin:alice`, `key:billing`), or `anonymous:<address>`."""
    operation: str
    """The RPC's full method name, e.g. `/switchboard.jobs.v1.JobsService/PauseQueue`."""
    target: str
    """What it acted on: a queue, a rule, a key's name, `settings`."""
    outcome: Outcome
    source: str
    """The client's address as the gateway saw it (x-forwarded-for), else the peer's."""
    detail: str = ""


DEFAULT_MAX_ENTRIES = 10_000
MAX_PAGE_SIZE = 500
_FIELD_LIMIT = 512


class AuditLog:
    """The trail in a Redis stream (`<prefix>:audit`), capped near `max_entries`, newest read first.

    A page token is the id of the last entry returned; entries older than it come next, so a page never
    repeats or skips while new entries arrive.
    """

    def __init__(self, redis: Redis, *, prefix: str, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self._redis = redis
        self.key = f"{prefix}:audit"
        self._max_entries = max_entries

    async def record(self, entry: AuditEntry) -> None:
        fields = {
            "time_ms": str(entry.time_ms),
            "principal": entry.principal[:_FIELD_LIMIT],
            "operation": entry.operation[:_FIELD_LIMIT],
            "target": entry.target[:_FIELD_LIMIT],
            "outcome": entry.outcome.value,
            "source": entry.source[:_FIELD_LIMIT],
            "detail": entry.detail[: _FIELD_LIMIT * 4],
        }
        await self._redis.xadd(self.key, fields, maxlen=self._max_entries, approximate=True)  # type: ignore[arg-type]  # redis-py's stub wants a wider dict type

    async def list(self, *, page_size: int = 50, page_token: str = "") -> tuple[list[AuditEntry], str]:
        """Newest first; → (entries, next page token or "")."""
        if not 0 < page_size <= MAX_PAGE_SIZE:
            raise InvalidArgumentError.for_field("page_size", f"use 1 to {MAX_PAGE_SIZE}")
        if page_token and not _STREAM_ID.match(page_token):
            raise InvalidArgumentError.for_field("page_token", "not a token this API returned; start again")
        top = f"({page_token}" if page_token else "+"
        rows = cast(
            list[tuple[bytes, dict[bytes, bytes]]],
            await self._redis.xrevrange(self.key, max=top, min="-", count=page_size + 1),
        )
        entries = [_entry(fields) for _, fields in rows[:page_size]]
        more = len(rows) > page_size
        return entries, rows[page_size - 1][0].decode() if more else ""


_STREAM_ID = re.compile(r"^\d{1,20}-\d{1,20}$")


def _entry(fields: dict[bytes, bytes]) -> AuditEntry:
    text = {key.decode(): value.decode() for key, value in fields.items()}
    return AuditEntry(
        time_ms=int(text.get("time_ms", "0")),
        principal=text.get("principal", ""),
        operation=text.get("operation", ""),
        target=text.get("target", ""),
        outcome=Outcome(text.get("outcome", Outcome.FAILED.value)),
        source=text.get("source", ""),
        detail=text.get("detail", ""),
    )
