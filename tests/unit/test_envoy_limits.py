"""Envoy's side of rate limiting: rules as Envoy states them in X-RateLimit-Limit (per second, minute,
hour or day, never overstated), and descriptor values that always make a valid limiter key."""

from __future__ import annotations

import pytest

from envoyrls.v3 import rls_pb2
from services.ratelimit.gateway_limits import client_key
from services.ratelimit.limiter import MAX_KEY_LENGTH
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


@pytest.mark.parametrize(
    "entries",
    [
        {"generic_key": "api", "remote_address": "10.0.0.1", "api_key": "k" * 300},
        {"generic_key": "api", "remote_address": "10.0.0.1", "api_key": "clé-ünicode"},
        {"generic_key": "api", "remote_address": "10.0.0.1", "api_key": "tab\there"},
        {"generic_key": "api", "remote_address": "f" * 5000},
    ],
    ids=["long key", "non-ascii key", "control character", "long address"],
)
def test_any_identity_makes_a_valid_limiter_key(entries: dict[str, str]) -> None:
    """Envoy fails open when the rate-limit service errs: no descriptor value may make it err."""
    key = client_key(entries)
    assert 0 < len(key) <= MAX_KEY_LENGTH
    assert key.isascii() and key.isprintable()


def test_identities_keep_their_own_allowances() -> None:
    long_a, long_b = "a" * 200, "a" * 199 + "b"
    assert client_key({"api_key": long_a}) != client_key({"api_key": long_b})
    assert client_key({"api_key": long_a}) == client_key({"api_key": long_a})
    assert client_key({"api_key": "k1", "remote_address": "10.0.0.1"}) == "client:k1"
    assert client_key({"remote_address": "10.0.0.1"}) == "client:10.0.0.1"
    assert client_key({"api_key": "", "remote_address": "10.0.0.1"}) == "client:10.0.0.1"
