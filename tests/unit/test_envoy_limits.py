"""Rules as Envoy states them in X-RateLimit-Limit: per second, minute, hour or day, never overstated."""

from __future__ import annotations

import pytest

from envoyrls.v3 import rls_pb2
from services.ratelimit.rules import Rule
from services.ratelimit.servicer import envoy_limit

Unit = rls_pb2.RateLimitResponse.RateLimit


@pytest.mark.parametrize(
    ("limit", "period_ms", "per_unit", "unit"),
    [
        (100, 1000, 100, Unit.SECOND),
        (1000, 10_000, 6000, Unit.MINUTE),
        (7, 30_000, 14, Unit.MINUTE),
        (5, 60_000, 5, Unit.MINUTE),
        (50, 600_000, 300, Unit.HOUR),
        (3, 86_400_000, 3, Unit.DAY),
        (1, 7000, 12342, Unit.DAY),
    ],
)
def test_a_rule_is_stated_in_envoys_units(limit: int, period_ms: int, per_unit: int, unit: int) -> None:
    stated = envoy_limit(Rule(name="r", limit=limit, period_ms=period_ms))
    assert (stated.requests_per_unit, stated.unit, stated.name) == (per_unit, unit, "r")
