"""The process's Redis pool never opens more connections than its cap, however many calls wait."""

from __future__ import annotations

import asyncio
import uuid

from devstack.redis import RedisServer
from services.runtime.redis_pool import create_redis
from services.runtime.settings import RedisSettings


def _connections_named(server: RedisServer, name: str) -> int:
    client = server.client()
    try:
        return sum(1 for entry in client.client_list() if entry.get("name") == name)
    finally:
        client.close()


async def test_concurrent_calls_share_at_most_max_connections(redis_server: RedisServer) -> None:
    name = f"pool-test-{uuid.uuid4().hex[:8]}"
    redis = create_redis(RedisSettings(port=redis_server.port, max_connections=4), client_name=name)
    peak = 0
    calls_done = asyncio.Event()

    async def watch() -> None:
        nonlocal peak
        while not calls_done.is_set():
            peak = max(peak, await asyncio.to_thread(_connections_named, redis_server, name))
            await asyncio.sleep(0.005)

    watcher = asyncio.create_task(watch())
    # Each BLPOP holds its connection for 50 ms: 40 of them at once must queue for the 4 connections.
    results = await asyncio.gather(*(redis.blpop([f"{name}:{i}"], timeout=0.05) for i in range(40)))
    calls_done.set()
    await watcher
    assert results == [None] * 40, "every call completed"
    assert 1 <= peak <= 4
    assert _connections_named(redis_server, name) <= 4
    await redis.aclose()


async def test_a_redis_restart_costs_callers_no_error(own_redis: RedisServer) -> None:
    redis = create_redis(RedisSettings(port=own_redis.port))
    await redis.set("k", "v")
    own_redis.restart()
    # The pooled connection died with the old server; the call reconnects and retries by itself.
    assert await redis.ping()
    await redis.aclose()
