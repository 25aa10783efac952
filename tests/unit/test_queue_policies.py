"""Queue policies: backoff arithmetic, and overrides from stored settings applied without a restart."""

from __future__ import annotations

import json
import random

import pytest
from redis.asyncio import Redis

from services.jobs.broker import SwitchboardBroker
from services.jobs.catalog import register_tasks
from services.jobs.queues import DEFAULT_POLICIES, Backoff, BackoffType, PolicyBook
from services.jobs.store import JobStore
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


def _logged_problems(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        str(getattr(record, "problem", ""))
        for record in caplog.records
        if "stored settings do not validate" in record.getMessage()
    ]


@pytest.mark.parametrize(
    ("document", "named"),
    [
        ('{"version": "x"}', "version"),
        ("[1, 2]", "(document)"),
        ('{"queue_policies": {"analytics": 5}}', "queue_policies.analytics"),
        ('{"version": 2, "queue_policies": {"analytics": {"max_attempts": -1}}}', "analytics.max_attempts"),
        ('{"version": 2, "queue_policies": {"analytcs": {"max_attempts": 2}}}', "analytcs: no such queue"),
        ("not json", "(document)"),
    ],
)
def test_a_document_that_does_not_validate_keeps_the_last_good_policy_and_is_logged_once(
    document: str, named: str, caplog: pytest.LogCaptureFixture
) -> None:
    book = PolicyBook()
    good = {"version": 1, "queue_policies": {"analytics": {"max_attempts": 9}}}
    assert book.apply_settings(json.dumps(good))
    assert not book.apply_settings(document)
    assert not book.apply_settings(document), "re-read every second, the same bad document"
    assert book["analytics"].max_attempts == 9, "the last good policy stays, not the defaults"
    assert book.version == 1
    problems = _logged_problems(caplog)
    assert len(problems) == 1, "logged once, not on every re-read"
    assert named in problems[0], problems[0]


def test_a_bad_document_at_start_leaves_the_defaults() -> None:
    book = PolicyBook()
    assert not book.apply_settings('{"queue_policies": {"bigquery": {"concurrency": "many"}}}')
    assert book["bigquery"] == DEFAULT_POLICIES["bigquery"]


def test_a_fixed_document_is_applied_again_after_a_bad_one(caplog: pytest.LogCaptureFixture) -> None:
    book = PolicyBook()
    book.apply_settings('{"version": 5, "queue_policies": {"analytics": 5}}')
    assert book.apply_settings('{"version": 6, "queue_policies": {"analytics": {"max_attempts": 4}}}')
    assert (book.version, book["analytics"].max_attempts) == (6, 4)


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
    # Task modules another test imported (the analytics tasks) are declared in this process too.
    assert [name for name in broker.tasks_for("analytics") if name.startswith("diagnostics.")] == expected
