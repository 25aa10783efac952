"""The limiter and the rate-limit service against a real Redis: exactness, rates, sharing, failure."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import duration_pb2
from grpc_health.v1 import health_pb2
from redis.asyncio import Redis

from devstack.redis import RedisServer
from devstack.services import ServiceProcess
from services.access.credentials import basic_header
from services.ratelimit.limiter import Limiter
from services.ratelimit.rules import Algorithm, Rule, RuleBook
from services.runtime.redis_mux import RedisMux
from switchboard.ratelimit.v1 import ratelimit_pb2, ratelimit_pb2_grpc
from tests.polling import eventually


@pytest.fixture
def limiter(redis_mux: RedisMux, key_prefix: str) -> Limiter:
    return Limiter(redis_mux, prefix=key_prefix, timeout_seconds=1.0)


async def _start_of_a_fresh_window(redis: Redis, period_s: int, margin_s: float = 5.0) -> None:
    """Waits (on Redis's clock) until at least `margin_s` remain in the current fixed window."""
    seconds, micros = await redis.time()
    into_window = (seconds % period_s) + micros / 1e6
    if period_s - into_window < margin_s:
        await asyncio.sleep(period_s - into_window + 0.01)


async def test_fixed_window_allows_exactly_the_limit_under_50_concurrent_clients(
    limiter: Limiter, redis_client: Redis
) -> None:
    rule = Rule(name="exact", limit=37, period_ms=60_000, algorithm=Algorithm.FIXED_WINDOW)
    await _start_of_a_fresh_window(redis_client, 60)

    async def client() -> int:
        return sum([(await limiter.decide(rule, "shared-key")).allowed for _ in range(4)])

    allowed = sum(await asyncio.gather(*(client() for _ in range(50))))
    assert allowed == 37
    denied = await limiter.decide(rule, "shared-key")
    assert (denied.allowed, denied.remaining) == (False, 0)
    assert 0 < denied.retry_after_ms <= 60_000
    assert (await limiter.decide(rule, "another-key")).allowed, "keys are independent"


async def test_gcra_allows_the_burst_then_the_rate(limiter: Limiter) -> None:
    rule = Rule(name="smooth", limit=20, period_ms=1000, burst=5)
    burst = [await limiter.decide(rule, "k") for _ in range(8)]
    assert [d.allowed for d in burst] == [True] * 5 + [False] * 3
    assert burst[4].remaining == 0
    assert 40 <= burst[5].retry_after_ms <= 50, "one request every 50 ms"

    allowed = 0
    started = time.monotonic()
    while time.monotonic() - started < 1.0:
        allowed += (await limiter.decide(rule, "k")).allowed
        await asyncio.sleep(0.002)
    assert 18 <= allowed <= 22, "20 per second once the burst is spent"


async def test_cost_and_peek(limiter: Limiter) -> None:
    rule = Rule(name="costly", limit=10, period_ms=10_000)
    assert (await limiter.decide(rule, "k", cost=7)).remaining == 3
    peeked = await limiter.peek(rule, "k")
    assert peeked.remaining == 3
    assert (await limiter.peek(rule, "k")).remaining == 3, "peeking consumes nothing"
    assert not (await limiter.decide(rule, "k", cost=4)).allowed


async def test_shadow_mode_counts_but_never_denies(limiter: Limiter) -> None:
    rule = Rule(name="shadow", limit=2, period_ms=60_000, shadow_mode=True)
    decisions = [await limiter.decide(rule, "k") for _ in range(5)]
    assert all(d.allowed for d in decisions)
    assert decisions[-1].remaining == 0


def _rule(limit: int, period_s: int = 10, *, burst: int = 0, fixed: bool = False) -> ratelimit_pb2.Rule:
    algorithm = ratelimit_pb2.ALGORITHM_FIXED_WINDOW if fixed else ratelimit_pb2.ALGORITHM_GCRA
    return ratelimit_pb2.Rule(
        limit=limit, period=duration_pb2.Duration(seconds=period_s), burst=burst, algorithm=algorithm
    )


ADMIN = ("admin", "a-long-test-password-0001")
AS_ADMIN = (("authorization", basic_header(*ADMIN)),)


@pytest.fixture
async def two_services(redis_server: RedisServer, tmp_path: Path) -> AsyncIterator[list[ServiceProcess]]:
    env = {
        "REDIS_PORT": str(redis_server.port),
        "RATELIMIT_KEY_PREFIX": f"rl-{uuid.uuid4().hex[:8]}",
        "HEALTH_CHECK_INTERVAL_SECONDS": "0.1",
        "SWITCHBOARD_ADMIN_USER": ADMIN[0],
        "SWITCHBOARD_ADMIN_PASSWORD": ADMIN[1],
    }
    services = [ServiceProcess("ratelimit", run_dir=tmp_path / name, env=env) for name in ("a", "b")]
    for service in services:
        service.start()
    for service in services:
        await asyncio.to_thread(service.wait_ready)
    yield services
    for service in services:
        service.stop()


async def test_two_instances_share_one_limit_and_see_rule_changes_within_a_second(
    two_services: list[ServiceProcess], redis_client: Redis
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        stubs = [
            ratelimit_pb2_grpc.RateLimitServiceStub(
                await stack.enter_async_context(grpc.aio.insecure_channel(service.address))
            )
            for service in two_services
        ]
        await _start_of_a_fresh_window(redis_client, 60)
        await stubs[0].PutRule(
            ratelimit_pb2.PutRuleRequest(name="shared", rule=_rule(11, 60, fixed=True)), metadata=AS_ADMIN
        )
        changed_at = time.monotonic()
        await eventually(
            lambda: stubs[1].ListRules(ratelimit_pb2.ListRulesRequest()),
            lambda response: any(rule.name == "shared" for rule in response.rules),
            timeout=1.0,
            what="the other instance seeing the new rule",
        )
        assert time.monotonic() - changed_at <= 1.0
        request = ratelimit_pb2.CheckRateLimitRequest(rule="shared", key="k")
        answers = [await stubs[i % 2].CheckRateLimit(request) for i in range(30)]
        assert [answer.allowed for answer in answers] == [True] * 11 + [False] * 19, (
            "one limit, two instances"
        )


async def test_api_errors_and_usage(two_services: list[ServiceProcess]) -> None:
    async with grpc.aio.insecure_channel(two_services[0].address) as channel:
        api = ratelimit_pb2_grpc.RateLimitServiceStub(channel)
        listed = await api.ListRules(ratelimit_pb2.ListRulesRequest())
        defaults = {rule.name: rule for rule in listed.rules}
        assert defaults["api"].limit == 100
        assert defaults["api"].period.seconds == 1
        assert defaults["api"].algorithm == ratelimit_pb2.ALGORITHM_GCRA

        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await api.PutRule(ratelimit_pb2.PutRuleRequest(name="x", rule=_rule(0, 0)), metadata=AS_ADMIN)
        assert bad.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "period" in (bad.value.details() or "") and "limit" in (bad.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await api.DeleteRule(ratelimit_pb2.DeleteRuleRequest(name="nope"), metadata=AS_ADMIN)
        assert missing.value.code() is grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await api.CheckRateLimit(ratelimit_pb2.CheckRateLimitRequest(rule="nope", key="k"))
        assert unknown.value.code() is grpc.StatusCode.NOT_FOUND
        assert "known rules: api" in (unknown.value.details() or "")

        await api.PutRule(ratelimit_pb2.PutRuleRequest(name="usage", rule=_rule(5, 10)), metadata=AS_ADMIN)
        check = await api.CheckRateLimit(ratelimit_pb2.CheckRateLimitRequest(rule="usage", key="k", cost=2))
        assert (check.allowed, check.limit, check.remaining) == (True, 5, 3)
        for _ in range(2):
            usage = await api.GetUsage(ratelimit_pb2.GetUsageRequest(rule="usage", key="k"))
            assert (usage.limit, usage.remaining) == (5, 3)
        await api.DeleteRule(ratelimit_pb2.DeleteRuleRequest(name="usage"), metadata=AS_ADMIN)
        assert "usage" not in {r.name for r in (await api.ListRules(ratelimit_pb2.ListRulesRequest())).rules}


async def test_redis_down_answers_unavailable_fast_and_recovers(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    service = ServiceProcess(
        "ratelimit",
        run_dir=tmp_path,
        env={"REDIS_PORT": str(own_redis.port), "HEALTH_CHECK_INTERVAL_SECONDS": "0.1"},
    )
    service.start()
    try:
        await asyncio.to_thread(service.wait_ready)
        async with grpc.aio.insecure_channel(service.address) as channel:
            api = ratelimit_pb2_grpc.RateLimitServiceStub(channel)
            request = ratelimit_pb2.CheckRateLimitRequest(rule="api", key="k")
            assert (await api.CheckRateLimit(request)).allowed

            own_redis.stop()
            latencies = []
            for _ in range(5):
                started = time.perf_counter()
                with pytest.raises(grpc.aio.AioRpcError) as raised:
                    await api.CheckRateLimit(request)
                latencies.append(time.perf_counter() - started)
                assert raised.value.code() is grpc.StatusCode.UNAVAILABLE
            # The first check waits out the 40 ms deadline; the next ones fail at once (circuit open), well
            # under the deadline even on a busy machine.
            assert max(latencies) <= 0.05, [f"{s * 1000:.1f} ms" for s in latencies]
            assert sorted(latencies)[2] <= 0.025, [f"{s * 1000:.1f} ms" for s in latencies]
            await eventually(
                lambda: asyncio.to_thread(service.health),
                lambda status: status == health_pb2.HealthCheckResponse.NOT_SERVING,
                timeout=5,
                what="NOT_SERVING while Redis is down",
            )

            own_redis.start()
            await eventually(
                lambda: api.CheckRateLimit(request),
                lambda answer: answer.allowed,
                timeout=10,
                what="checks answering again",
                tolerate=(grpc.aio.AioRpcError,),
            )
            await eventually(
                lambda: asyncio.to_thread(service.health),
                lambda status: status == health_pb2.HealthCheckResponse.SERVING,
                timeout=5,
                what="SERVING again",
            )
    finally:
        service.stop()


async def test_rules_come_back_as_defaults_when_redis_lost_its_data(
    redis_client: Redis, key_prefix: str
) -> None:
    book = RuleBook(redis_client, prefix=key_prefix)
    await book.load()
    await book.put(Rule(name="custom", limit=3, period_ms=1000))
    await redis_client.delete(
        f"{key_prefix}:rules", f"{key_prefix}:rules:version"
    )  # as a restart without persistence
    await book.refresh()
    assert {rule.name for rule in book.all()} == {"api", "api-address", "queue-ratelimit"}
