"""The audit trail in Redis: newest first, paged without repeats while entries arrive, bounded."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from services.access.audit import AuditEntry, AuditLog, Outcome
from services.runtime.errors import InvalidArgumentError


def _entry(n: int) -> AuditEntry:
    return AuditEntry(
        time_ms=n, principal="admin:alice", operation="/x.Y/Pause", target=f"q{n}",
        outcome=Outcome.ALLOWED, source="127.0.0.1",
    )  # fmt: skip


async def test_entries_page_newest_first_without_repeats_while_new_ones_arrive(
    redis_client: Redis, key_prefix: str
) -> None:
    log = AuditLog(redis_client, prefix=key_prefix)
    for n in range(5):
        await log.record(_entry(n))
    first, token = await log.list(page_size=2)
    assert [entry.target for entry in first] == ["q4", "q3"]
    await log.record(_entry(99))  # arrives between two page reads
    second, token = await log.list(page_size=2, page_token=token)
    third, token = await log.list(page_size=2, page_token=token)
    assert [entry.target for entry in second + third] == ["q2", "q1", "q0"]
    assert token == ""


async def test_the_trail_is_bounded(redis_client: Redis, key_prefix: str) -> None:
    log = AuditLog(redis_client, prefix=key_prefix, max_entries=100)
    for n in range(1000):
        await log.record(_entry(n))
    assert await redis_client.xlen(log.key) < 300, "approximate trimming keeps it near the bound"


async def test_a_bad_page_token_is_a_clear_400(redis_client: Redis, key_prefix: str) -> None:
    with pytest.raises(InvalidArgumentError, match="page_token"):
        await AuditLog(redis_client, prefix=key_prefix).list(page_token="garbage")
