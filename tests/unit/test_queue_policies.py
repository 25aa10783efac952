"""Queue policies: backoff arithmetic, and overrides from stored settings applied without a restart."""

from __future__ import annotations

import json
import random

import pytest
from redis.asyncio import Redis

from services.jobs.broker import SwitchboardBroker
from services.jobs.queues import DEFAULT_POLICIES, Backoff, BackoffType, PolicyBook
from services.jobs.store import JobStore
from services.jobs.tasks import register_tasks
from services.runtime.redis_mux import RedisMux
from services.runtime.settings import RedisSettings


def test_fixed_backoff_waits_the_same_each_time() -> None:
    backoff = Backoff(type=BackoffType.FIXED, base_delay_ms=300)
    assert [backoff.delay_ms(attempt) for attempt in (1, 2, 5)] == [300, 300, 300]


def test_exponential_backoff_doubles_up_to_its_cap() -> None:
    backoff = Backoff(type=BackoffType.EXPONENTIAL, base_delay_ms=100, max_delay_ms=1000)
    assert [backoff.delay_ms(attempt) for attempt in range(1, 7)] == [100, 200, 400, 800, 1000, 1000]


def test_jitter_only_adds_up_to_its_fraction() -> None:
    backoff = Backoff(type=BackoffType.FIXED, base_delay_ms=1000, jitter=0.25)
    delays = [backoff.delay_ms(1, random.Random(seed)) for seed in range(200)]  # noqa: S311
    assert min(delays) >= 1000
    assert max(delays) <= 1250
    assert len(set(delays)) > 50


def test_defaults_fit_each_queue() -> None:
    assert DEFAULT_POLICIES["bigquery"].max_attempts < DEFAULT_POLICIES["analytics"].max_attempts
    assert DEFAULT_POLICIES["bigquery"].timeout_ms > DEFAULT_POLICIES["analytics"].timeout_ms
    assert DEFAULT_POLICIES["bigquery"].lease_ms > DEFAULT_POLICIES["analytics"].lease_ms
    assert DEFAULT_POLICIES["ratelimit"].rate_limit_rule


def test_stored_overrides_change_only_the_fields_they_name() -> None:
    book = PolicyBook()
    settings = {
        "version": 3,
        "queue_policies": {"analytics": {"max_attempts": 9, "backoff": {"base_delay_ms": 50}}},
    }
    book.apply_settings(json.dumps(settings))
    assert book.version == 3
    assert book["analytics"].max_attempts == 9
    assert book["analytics"].backoff.base_delay_ms == 50
    assert book["analytics"].backoff.type is DEFAULT_POLICIES["analytics"].backoff.type
    assert book["bigquery"] == DEFAULT_POLICIES["bigquery"]

    book.apply_settings(json.dumps({"version": 4, "queue_policies": {}}))
    assert book["analytics"] == DEFAULT_POLICIES["analytics"], "a removed override falls back to the default"


def test_a_bad_override_keeps_the_defaults_and_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    book = PolicyBook()
    book.apply_settings(json.dumps({"version": 1, "queue_policies": {"analytics": {"max_attempts": -1}}}))
    assert book["analytics"] == DEFAULT_POLICIES["analytics"]
    assert any("invalid policy override" in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize(
    ("enabled", "expected"),
    [(True, ["diagnostics.crash", "diagnostics.echo", "diagnostics.fail", "diagnostics.sleep"]), (False, [])],
)
def test_diagnostic_tasks_exist_only_when_enabled(enabled: bool, expected: list[str]) -> None:
    redis_never_used = Redis()
    broker = SwitchboardBroker(
        JobStore(redis_never_used, RedisMux(RedisSettings()), prefix="x"), PolicyBook(), queues=["analytics"]
    )
    register_tasks(broker, diagnostics_enabled=enabled)
    assert broker.tasks_for("analytics") == expected
