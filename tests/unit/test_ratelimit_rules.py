"""Rate-limit rules: what is accepted, and how a bad rule is explained."""

from __future__ import annotations

import pytest

from services.ratelimit.rules import DEFAULT_RULES, Algorithm, Rule
from services.ratelimit.settings import RateLimitSettings
from services.runtime.errors import InvalidArgumentError
from services.runtime.settings import ConfigurationError, load_settings


@pytest.mark.parametrize(
    "rule",
    [
        Rule(name="api", limit=100, period_ms=1000, burst=100),
        Rule(name="reports.daily", limit=5, period_ms=86_400_000, algorithm=Algorithm.FIXED_WINDOW),
        Rule(name="odd-window", limit=7, period_ms=30_000, shadow_mode=True),
    ],
)
def test_valid_rules_round_trip(rule: Rule) -> None:
    assert Rule.from_json(rule.validated().to_json()) == rule


@pytest.mark.parametrize(
    ("rule", "field", "complaint"),
    [
        (Rule(name="a", limit=0, period_ms=1000), "limit", "positive"),
        (Rule(name="a", limit=1, period_ms=500), "period", "between 1s and 1d"),
        (Rule(name="a", limit=1, period_ms=86_400_001), "period", "between 1s and 1d"),
        (Rule(name="Bad Name", limit=1, period_ms=1000), "name", "a-z 0-9"),
        (
            Rule(name="a", limit=1, period_ms=1500, algorithm=Algorithm.FIXED_WINDOW),
            "period",
            "whole seconds",
        ),
    ],
)
def test_invalid_rules_say_what_is_wrong(rule: Rule, field: str, complaint: str) -> None:
    with pytest.raises(InvalidArgumentError) as raised:
        rule.validated()
    assert [v.field for v in raised.value.violations] == [field]
    assert complaint in raised.value.message


def test_burst_defaults_to_a_full_period() -> None:
    assert Rule(name="a", limit=50, period_ms=1000).capacity == 50
    assert Rule(name="a", limit=50, period_ms=1000, burst=5).capacity == 5


def test_seeded_rules_come_from_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RATELIMIT_DEFAULT_RULES", '[{"name": "api", "limit": 20, "period_ms": 60000}]')
    assert load_settings(RateLimitSettings).seed_rules() == (Rule(name="api", limit=20, period_ms=60_000),)
    monkeypatch.setenv("RATELIMIT_DEFAULT_RULES", '[{"name": "api", "limit": 0, "period_ms": 1000}]')
    with pytest.raises(ConfigurationError, match="RATELIMIT_DEFAULT_RULES"):
        load_settings(RateLimitSettings)
    monkeypatch.delenv("RATELIMIT_DEFAULT_RULES")
    assert load_settings(RateLimitSettings).seed_rules() == DEFAULT_RULES


def test_the_limiter_fails_fast_instead_of_retrying_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings(RateLimitSettings).redis.retries == 0
    monkeypatch.setenv("REDIS_RETRIES", "9")
    with pytest.raises(ConfigurationError, match="REDIS_RETRIES='9'"):
        load_settings(RateLimitSettings)
