"""The run-time settings: validating a change (each bad field named with its bound), the diff kept as
history, and the stored document staying the format the jobs' PolicyBook reads."""

from __future__ import annotations

import json

import pytest

from services.admin.settings_diff import SettingChange, diff
from services.admin.settings_document import RunSettings, apply_changes, parse_document, render_document
from services.jobs.queues import PolicyBook
from services.queue_policy import DEFAULT_POLICIES
from services.runtime.errors import FailedPreconditionError, InvalidArgumentError


def _violations(changes: dict[str, object]) -> dict[str, str]:
    with pytest.raises(InvalidArgumentError) as raised:
        apply_changes(RunSettings(), changes)
    return {violation.field: violation.description for violation in raised.value.violations}


def test_every_bad_field_is_named_with_its_bound() -> None:
    found = _violations(
        {
            "queue_policies.analytics.max_attempts": 0,
            "queue_policies.bigquery.timeout_ms": 5,
            "bigquery.max_wait_ms": 10**9,
            "queue_policies.analytics.backoff.type": "sometimes",
            "no_such.setting": True,
        }
    )
    assert found["queue_policies.analytics.max_attempts"] == "must be from 1 to 100; got 0"
    assert found["queue_policies.bigquery.timeout_ms"] == "must be from 10 ms to 86400000 ms; got 5"
    assert found["bigquery.max_wait_ms"] == "must be from 100 ms to 300000 ms; got 1000000000"
    assert "'fixed' or 'exponential'" in found["queue_policies.analytics.backoff.type"]
    assert found["no_such.setting"].startswith("no such setting; settable: queue_policies.<queue>")


def test_a_queue_that_does_not_exist_is_refused() -> None:
    found = _violations({"queue_policies.mail.max_attempts": 3, "queue_paused.mail": True})
    assert set(found) == {"queue_policies.mail.max_attempts", "queue_paused.mail"}


def test_the_default_wait_may_not_exceed_the_longest() -> None:
    found = _violations({"bigquery.default_wait_ms": 20_000, "bigquery.max_wait_ms": 10_000})
    assert found == {"bigquery.default_wait_ms": "must not exceed bigquery.max_wait_ms (10000 ms); got 20000"}


def test_datasets_are_bounded_in_number_and_form() -> None:
    assert "bigquery.allowed_datasets.1" in _violations({"bigquery.allowed_datasets": ["ok", "no spaces"]})
    assert "bigquery.allowed_datasets" in _violations(
        {"bigquery.allowed_datasets": [f"d{i}" for i in range(101)]}
    )
    allowed = apply_changes(RunSettings(), {"bigquery.allowed_datasets": ["sample", "my-project.events"]})
    assert allowed.bigquery.allowed_datasets == ("sample", "my-project.events")


def test_violations_use_the_callers_names() -> None:
    with pytest.raises(InvalidArgumentError) as raised:
        apply_changes(
            RunSettings(),
            {"queue_policies.analytics.timeout_ms": 1},
            shown_as=lambda path: path.replace("timeout_ms", "timeout"),
        )
    assert [v.field for v in raised.value.violations] == ["queue_policies.analytics.timeout"]
    assert "queue_policies.analytics.timeout: must be from 10 ms" in raised.value.message


def test_the_diff_names_each_changed_leaf_with_old_and_new() -> None:
    before = RunSettings()
    after = apply_changes(
        before,
        {
            "queue_policies.analytics.backoff.base_delay_ms": 250,
            "queue_paused.bigquery": True,
            "bigquery.allowed_datasets": ["sample"],
            "diagnostics_enabled": True,  # as it was: not a change
        },
    )
    assert diff(before, after) == [
        SettingChange("bigquery.allowed_datasets", [], ["sample"]),
        SettingChange("queue_paused.bigquery", False, True),
        SettingChange("queue_policies.analytics.backoff.base_delay_ms", 500, 250),
    ]
    assert diff(after, after) == []


def test_a_section_replaced_whole_diffs_field_by_field() -> None:
    before = RunSettings()
    after = apply_changes(
        before,
        {
            "bigquery": {
                "cache_ttl_seconds": 60,
                "default_wait_ms": 2000,
                "max_wait_ms": 30000,
                "allowed_datasets": [],
            }
        },
    )
    assert diff(before, after) == [SettingChange("bigquery.cache_ttl_seconds", 600, 60)]


def test_the_document_round_trips_and_stores_only_overrides() -> None:
    settings = apply_changes(
        RunSettings(),
        {
            "queue_policies.analytics.max_attempts": 7,
            "diagnostics_enabled": False,
            "queue_paused.analytics": True,
        },
    )
    raw = render_document(settings, version=4, update_time_ms=1234)
    stored = json.loads(raw)
    assert stored["version"] == 4
    assert stored["queue_policies"] == {"analytics": {"max_attempts": 7}}, (
        "only what differs from the defaults"
    )
    assert "queue_paused" not in stored, "paused is the queue's own flag, not the document's"
    parsed = parse_document(raw)
    assert (parsed.version, parsed.update_time_ms) == (4, 1234)
    assert parsed.settings == settings.model_copy(update={"queue_paused": RunSettings().queue_paused})


def test_whether_keys_are_required_is_reported_but_not_settable_saying_where_it_is_set() -> None:
    """It used to be stored and reported while every process went on enforcing the environment's value."""
    with pytest.raises(InvalidArgumentError) as refused:
        apply_changes(RunSettings(), {"require_api_keys": True, "diagnostics_enabled": False})
    [violation] = refused.value.violations
    assert violation.field == "require_api_keys"
    assert "SWITCHBOARD_REQUIRE_API_KEYS" in violation.description and "restart" in violation.description
    stored_before = json.dumps({"version": 3, "update_time_ms": 1, "require_api_keys": True})
    assert parse_document(stored_before).version == 3, "a document that still holds it reads"


def test_the_jobs_policy_book_reads_the_document_the_admin_writes() -> None:
    settings = apply_changes(
        RunSettings(), {"queue_policies.bigquery.concurrency": 2, "dashboard_read_only": True}
    )
    book = PolicyBook()
    assert book.apply_settings(render_document(settings, version=9, update_time_ms=1))
    assert (book.version, book["bigquery"].concurrency) == (9, 2)
    assert book["analytics"] == DEFAULT_POLICIES["analytics"]


def test_a_document_written_by_hand_that_does_not_validate_says_what_to_do() -> None:
    with pytest.raises(FailedPreconditionError, match="fix or delete it in Redis"):
        parse_document(json.dumps({"version": 2, "queue_policies": {"analytics": {"max_attempts": -1}}}))
    assert parse_document(None).version == 0
