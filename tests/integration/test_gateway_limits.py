"""Envoy's rate-limit requests against real Redis: every descriptor gets a verdict, none fails the call."""

from __future__ import annotations

from redis.asyncio import Redis

from services.ratelimit.gateway_limits import GatewayLimits
from services.ratelimit.limiter import Limiter
from services.ratelimit.rules import Rule, RuleBook
from services.runtime.redis_mux import RedisMux


async def _limits(redis_client: Redis, redis_mux: RedisMux, key_prefix: str) -> GatewayLimits:
    rules = RuleBook(redis_client, prefix=key_prefix)
    await rules.load()
    await rules.put(Rule(name="api", limit=2, period_ms=10_000))
    await rules.put(Rule(name="api-address", limit=3, period_ms=10_000))
    limiter = Limiter(redis_mux, prefix=key_prefix, timeout_seconds=1.0)
    return GatewayLimits(rules, limiter, domain="switchboard")


async def test_a_long_api_key_is_limited_like_any_other(
    redis_client: Redis, redis_mux: RedisMux, key_prefix: str
) -> None:
    """A 300-character key used to fail the check (INVALID_ARGUMENT), and Envoy then let it through."""
    limits = await _limits(redis_client, redis_mux, key_prefix)
    descriptor = {"generic_key": "api", "remote_address": "10.0.0.1", "api_key": "k" * 300}
    verdicts = [await limits.check("switchboard", [descriptor], 1) for _ in range(3)]
    assert [v[0].decision.allowed for v in verdicts if v[0].decision] == [True, True, False]


async def test_rotating_api_keys_meets_the_per_address_ceiling(
    redis_client: Redis, redis_mux: RedisMux, key_prefix: str
) -> None:
    limits = await _limits(redis_client, redis_mux, key_prefix)
    outcomes = []
    for index in range(5):
        verdicts = await limits.check(
            "switchboard",
            [
                {"generic_key": "api", "remote_address": "10.0.0.2", "api_key": f"key-{index}"},
                {"generic_key": "api-address", "remote_address": "10.0.0.2"},
            ],
            1,
        )
        outcomes.append(all(v.decision is not None and v.decision.allowed for v in verdicts))
    assert outcomes == [True, True, True, False, False], "a fresh key each time, 3 per address"


async def test_an_unknown_rule_or_domain_is_not_limited(
    redis_client: Redis, redis_mux: RedisMux, key_prefix: str
) -> None:
    limits = await _limits(redis_client, redis_mux, key_prefix)
    unknown_rule = await limits.check("switchboard", [{"generic_key": "x" * 500}], 1)
    other_domain = await limits.check("elsewhere", [{"generic_key": "api"}], 1)
    assert unknown_rule[0].decision is None
    assert other_domain[0].decision is None
