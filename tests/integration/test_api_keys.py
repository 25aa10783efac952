"""API keys in Redis: only a hash is stored, a revoked key stops working on every instance within 2 s."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from services.access.keys import KeyCache, KeyStore, parse_seed
from services.runtime.errors import ConflictError, InvalidArgumentError, NotFoundError
from tests.polling import eventually


@contextlib.asynccontextmanager
async def _instance(redis: Redis, prefix: str, *, refresh_seconds: float = 1.0) -> AsyncIterator[KeyCache]:
    """One process's cache, kept fresh in the background as a service's is."""
    cache = KeyCache(KeyStore(redis, prefix=prefix), refresh_seconds=refresh_seconds)
    await cache.refresh()
    task = asyncio.create_task(cache.keep_fresh(redis))
    try:
        yield cache
    finally:
        task.cancel()
        await asyncio.wait([task], timeout=3)


async def test_a_created_key_is_known_everywhere_and_a_revoked_one_nowhere_within_2_s(
    redis_client: Redis, key_prefix: str
) -> None:
    store = KeyStore(redis_client, prefix=key_prefix)
    # A periodic re-read far beyond the bound: within 2 s proves the change message does the work.
    async with (
        _instance(redis_client, key_prefix, refresh_seconds=30) as one,
        _instance(redis_client, key_prefix, refresh_seconds=30) as two,
    ):
        await asyncio.sleep(0.2)  # both listening (the test is about messages, not the first read)
        _, secret = await store.create("billing", ["jobs:read", "jobs:write"])
        assert secret.startswith("sb_billing_") and len(secret) > 40
        for cache in (one, two):
            found = await eventually(
                lambda c=cache: asyncio.sleep(0, c.lookup(secret)),  # type: ignore[misc]
                lambda k: k is not None, timeout=2, what="the new key known",
            )  # fmt: skip
            assert found.name == "billing"
        await store.revoke("billing")
        for cache in (one, two):
            await eventually(
                lambda c=cache: asyncio.sleep(0, c.lookup(secret)),  # type: ignore[misc]
                lambda k: k is None, timeout=2, what="the revoked key refused",
            )  # fmt: skip


async def test_a_missed_message_heals_by_the_periodic_re_read(redis_client: Redis, key_prefix: str) -> None:
    async with _instance(redis_client, key_prefix, refresh_seconds=0.5) as cache:
        store = KeyStore(redis_client, prefix=key_prefix)
        _, secret = await store.create("quiet", ["admin"])
        await redis_client.hdel(store.key, "quiet")  # gone without a message
        await eventually(
            lambda: asyncio.sleep(0, cache.lookup(secret)), lambda k: k is None, timeout=2, what="re-read"
        )


async def test_only_a_hash_of_the_secret_is_stored(redis_client: Redis, key_prefix: str) -> None:
    store = KeyStore(redis_client, prefix=key_prefix)
    _, secret = await store.create("ops", ["admin"], rate_limit_rule="gold")
    stored = await redis_client.hgetall(store.key)
    assert all(secret.encode() not in value for value in stored.values())
    listed = await store.list()
    assert [(k.name, sorted(k.scopes), k.rate_limit_rule) for k in listed] == [("ops", ["admin"], "gold")]


async def test_bad_names_scopes_duplicates_and_unknown_keys_say_what_to_do(
    redis_client: Redis, key_prefix: str
) -> None:
    store = KeyStore(redis_client, prefix=key_prefix)
    with pytest.raises(InvalidArgumentError, match="lower-case"):
        await store.create("Bad Name", ["admin"])
    with pytest.raises(InvalidArgumentError, match="jobs:raed"):
        await store.create("ok", ["jobs:raed"])
    with pytest.raises(InvalidArgumentError, match="one or more"):
        await store.create("ok", [])
    await store.create("ok", ["jobs:read"])
    with pytest.raises(ConflictError, match="revoke it first"):
        await store.create("ok", ["jobs:read"])
    with pytest.raises(NotFoundError, match="GET /api/keys"):
        await store.revoke("nope")


async def test_seeding_is_idempotent_and_never_replaces_a_key_made_through_the_api(
    redis_client: Redis, key_prefix: str
) -> None:
    store = KeyStore(redis_client, prefix=key_prefix)
    _, api_secret = await store.create("ops", ["admin"])
    seeds = parse_seed(f"ops={'o' * 30}:jobs:read, ci={'c' * 30}:jobs:write")
    await store.seed(seeds)
    await store.seed(seeds)
    cache = KeyCache(store)
    await cache.refresh()
    assert cache.lookup(api_secret) is not None, "the API-made key stays"
    assert cache.lookup("o" * 30) is None
    seeded = cache.lookup("c" * 30)
    assert seeded is not None and seeded.seeded
