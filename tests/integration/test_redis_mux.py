"""The shared, auto-pipelined Redis connection against a real redis-server: replies reach the right caller,
failures raise redis-py's errors, and it heals on its own after restarts and stalls."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
import redis
from pydantic import SecretStr
from redis.exceptions import AuthenticationError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from devstack.redis import RedisServer
from services.runtime.redis_mux import MuxScript, RedisMux
from services.runtime.settings import RedisSettings
from tests.integration.conftest import BlackHole

# A script that keeps Redis busy for a while, so that replies queue behind it.
_BUSY_SCRIPT = "local i = 0 while i < tonumber(ARGV[1]) do i = i + 1 end return ARGV[2]"


async def test_concurrent_commands_each_get_their_own_reply(redis_mux: RedisMux) -> None:
    key = f"mux-{uuid.uuid4().hex}"
    echoes = await asyncio.gather(*(redis_mux.execute("ECHO", f"reply-{i}") for i in range(500)))
    assert echoes == [f"reply-{i}".encode() for i in range(500)]
    counts = await asyncio.gather(*(redis_mux.execute("INCR", key) for _ in range(200)))
    assert sorted(counts) == list(range(1, 201))


async def test_an_error_reply_fails_only_its_own_command(redis_mux: RedisMux) -> None:
    key = f"mux-{uuid.uuid4().hex}"
    await redis_mux.execute("SET", key, "not a number")
    outcomes: list[object] = await asyncio.gather(
        redis_mux.execute("INCR", key), redis_mux.execute("GET", key), return_exceptions=True
    )
    wrong, right = outcomes
    assert isinstance(wrong, ResponseError)
    assert "not an integer" in str(wrong)
    assert right == b"not a number"


async def test_a_caller_that_gave_up_does_not_shift_the_replies_of_the_next(redis_mux: RedisMux) -> None:
    busy = MuxScript(redis_mux, _BUSY_SCRIPT)
    await busy.load()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.005):
            await busy(args=[3_000_000, "the busy script's reply"])
    # The late reply arrives after this command was sent; it must go nowhere, not to this caller. (The
    # wait is long: on a loaded machine the busy script can take seconds.)
    assert await redis_mux.execute("ECHO", "mine", wait_seconds=30) == b"mine"


async def test_a_script_is_loaded_again_after_redis_forgot_it(redis_mux: RedisMux) -> None:
    script = MuxScript(redis_mux, f"return '{uuid.uuid4().hex}'")
    await redis_mux.execute("SCRIPT", "FLUSH")
    first = await script()
    assert await script() == first
    assert await redis_mux.execute("SCRIPT", "EXISTS", script.sha) == [1]


async def test_a_redis_restart_fails_what_was_in_flight_and_then_heals(own_redis: RedisServer) -> None:
    mux = RedisMux(RedisSettings(port=own_redis.port, retries=0))
    script = MuxScript(mux, "return 'scripted'")
    assert await script() == b"scripted"
    slow = asyncio.ensure_future(mux.execute("EVAL", _BUSY_SCRIPT, 0, 50_000_000, "never"))
    await asyncio.sleep(0.05)
    own_redis.kill()
    with pytest.raises(RedisConnectionError):
        await slow
    with pytest.raises(RedisConnectionError, match="cannot connect"):
        await mux.execute("PING")
    own_redis.start()
    # Reconnects by itself, and the new server's empty script cache is refilled.
    assert await mux.execute("PING") == b"PONG"
    assert await script() == b"scripted"
    await mux.aclose()


async def test_with_retries_a_redis_restart_costs_callers_no_error(own_redis: RedisServer) -> None:
    mux = RedisMux(RedisSettings(port=own_redis.port, retries=2))
    await mux.execute("SET", "k", "v")
    own_redis.restart()
    # The connection died with the old server (this process has not noticed yet): sent, lost, sent again.
    assert await mux.execute("PING") == b"PONG"
    await mux.aclose()


async def test_a_stalled_redis_times_out_its_callers_and_then_serves_again(own_redis: RedisServer) -> None:
    mux = RedisMux(RedisSettings(port=own_redis.port, timeout_seconds=0.3))
    assert await mux.execute("PING") == b"PONG"
    # Redis busy far longer than the timeout: the caller hears about it at the timeout, not after.
    started = time.monotonic()
    with pytest.raises(RedisTimeoutError, match="did not answer EVAL"):
        await mux.execute("EVAL", _BUSY_SCRIPT, 0, 30_000_000, "late")
    assert time.monotonic() - started < 0.5
    await _wait_until_redis_answers(own_redis)
    # The late reply went nowhere; the next caller gets its own.
    assert await mux.execute("ECHO", "mine") == b"mine"
    await mux.aclose()


async def test_a_server_that_never_answers_the_handshake_times_out(black_hole: BlackHole) -> None:
    host, port = black_hole.address.rsplit(":", 1)
    named = RedisMux(
        RedisSettings(host=host, port=int(port), timeout_seconds=0.2, retries=0), client_name="never-named"
    )
    started = time.monotonic()
    with pytest.raises(RedisConnectionError, match="cannot connect"):
        await named.execute("PING")
    assert time.monotonic() - started < 0.6
    await named.aclose()
    # Without a handshake the connection opens, and the command itself times out.
    unnamed = RedisMux(RedisSettings(host=host, port=int(port), timeout_seconds=0.2, retries=0))
    with pytest.raises(RedisTimeoutError):
        await unnamed.execute("PING")
    await unnamed.aclose()


async def test_a_caller_in_a_hurry_waits_no_longer_for_a_connection_than_for_a_reply(
    black_hole: BlackHole,
) -> None:
    """A stalled Redis accepts connections and never answers the handshake: a check with a 40 ms budget
    must fail in about 40 ms, not after the connection's whole timeout, and not open a connection each."""
    host, port = black_hole.address.rsplit(":", 1)
    mux = RedisMux(
        RedisSettings(host=host, port=int(port), timeout_seconds=2.0, retries=0), client_name="stalled"
    )
    for _ in range(5):
        started = time.monotonic()
        with pytest.raises(RedisTimeoutError, match=r"did not accept a connection within 0\.04 s"):
            await mux.execute("PING", wait_seconds=0.04)
        assert time.monotonic() - started < 0.3
    black_hole.wait_for_connections(1)
    assert black_hole.connections == 1, "the callers shared one connection attempt"
    await mux.aclose()


async def test_credentials_database_and_name_are_used(own_redis: RedisServer) -> None:
    admin = own_redis.client()
    admin.config_set("requirepass", "s3cret-for-this-test")
    try:
        refused = RedisMux(RedisSettings(port=own_redis.port, password=SecretStr("wrong"), retries=0))
        with pytest.raises(AuthenticationError):
            await refused.execute("PING")
        await refused.aclose()

        mux = RedisMux(
            RedisSettings(port=own_redis.port, password=SecretStr("s3cret-for-this-test"), db=3),
            client_name="mux-named",
        )
        await mux.execute("SET", "where", "db3")
        assert await mux.execute("CLIENT", "GETNAME") == b"mux-named"
        authenticated = redis.Redis(port=own_redis.port, password="s3cret-for-this-test", db=3)
        assert authenticated.get("where") == b"db3"
        authenticated.close()
        await mux.aclose()
    finally:
        admin.close()


async def test_commands_beyond_the_in_flight_bound_fail_at_once(redis_server: RedisServer) -> None:
    # A long timeout: five busy scripts in a row can take seconds on a loaded machine.
    mux = RedisMux(RedisSettings(port=redis_server.port, timeout_seconds=30), max_in_flight=5)
    busy = MuxScript(mux, _BUSY_SCRIPT)
    await busy.load()
    waiting = [asyncio.ensure_future(busy(args=[300_000, f"busy-{i}"])) for i in range(5)]
    await asyncio.sleep(0)  # all five sent
    with pytest.raises(RedisTimeoutError, match="not keeping up: 5 commands"):
        await mux.execute("PING")
    assert await asyncio.gather(*waiting) == [f"busy-{i}".encode() for i in range(5)]
    assert await mux.execute("PING") == b"PONG"
    await mux.aclose()


def test_a_mux_serves_one_event_loop_after_another(redis_server: RedisServer) -> None:
    mux = RedisMux(RedisSettings(port=redis_server.port))
    assert asyncio.run(mux.execute("ECHO", "first loop")) == b"first loop"
    assert asyncio.run(mux.execute("ECHO", "second loop")) == b"second loop"
    asyncio.run(mux.aclose())


async def test_a_closed_mux_refuses_commands(redis_mux: RedisMux) -> None:
    await redis_mux.execute("PING")
    await redis_mux.aclose()
    with pytest.raises(RedisConnectionError, match="closed"):
        await redis_mux.execute("PING")


async def _wait_until_redis_answers(server: RedisServer) -> None:
    # The busy script takes a few seconds alone, many more on a loaded 2-core machine.
    deadline = time.monotonic() + 60
    while not await asyncio.to_thread(_answers, server):
        assert time.monotonic() < deadline, "Redis stayed busy"
        await asyncio.sleep(0.05)


def _answers(server: RedisServer) -> bool:
    try:
        return bool(server.ping())
    except Exception:  # busy running a script: BUSY error or timeout
        return False
