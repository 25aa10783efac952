"""The checks an ingested batch must pass: each kind of bad event reported with its index, all at once."""

from __future__ import annotations

import pytest

from services.analytics.events import Event, validate_batch, validate_batch_id
from services.analytics.settings import AnalyticsLimits
from services.runtime.errors import InvalidArgumentError

NOW_MS = 1_800_000_000_000
OLDEST_MS = NOW_MS - 48 * 3600 * 1000
LIMITS = AnalyticsLimits()


def _violations(events: list[Event], limits: AnalyticsLimits = LIMITS) -> dict[str, str]:
    with pytest.raises(InvalidArgumentError) as caught:
        validate_batch(events, limits=limits, now_ms=NOW_MS, oldest_ms=OLDEST_MS)
    return {v.field: v.description for v in caught.value.violations}


def _ok(**overrides: object) -> Event:
    fields: dict[str, object] = {"name": "signup", "user_id": "u1", "timestamp_ms": NOW_MS, "properties": {}}
    fields.update(overrides)
    return Event(**fields)  # type: ignore[arg-type]


def test_a_good_batch_passes() -> None:
    validate_batch(
        [_ok(), _ok(name="page.view:home-v2_x", user_id="", properties={"a": [1, {"b": "c"}]})],
        limits=LIMITS,
        now_ms=NOW_MS,
        oldest_ms=OLDEST_MS,
    )


@pytest.mark.parametrize(
    ("event", "field", "says"),
    [
        (_ok(name=""), "name", "give the event a name"),
        (_ok(name="1starts-with-digit"), "name", "use a letter"),
        (_ok(name="has{brace}"), "name", "use a letter"),
        (_ok(name="x" * 129), "name", "over the limit of 128"),
        (_ok(user_id="u" * 257), "user_id", "over the limit of 256"),
        (_ok(timestamp_ms=NOW_MS + 301_000), "timestamp", "more than 300 s in the future"),
        (_ok(timestamp_ms=OLDEST_MS - 1), "timestamp", "older than the minute buckets' retention"),
        (_ok(properties={"blob": "x" * 17_000}), "properties", "over the limit of 16384"),
        (
            _ok(properties={"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {}}}}}}}}}),
            "properties",
            "9 levels",
        ),
    ],
)
def test_each_kind_of_bad_event_is_named_by_index(event: Event, field: str, says: str) -> None:
    found = _violations([_ok(), _ok(), event])
    assert list(found) == [f"events[2].{field}"]
    assert says in found[f"events[2].{field}"]


def test_every_bad_event_is_reported_and_the_message_says_nothing_was_kept() -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        validate_batch(
            [_ok(name=""), _ok(), _ok(user_id="u" * 300)], limits=LIMITS, now_ms=NOW_MS, oldest_ms=OLDEST_MS
        )
    assert [v.field for v in caught.value.violations] == ["events[0].name", "events[2].user_id"]
    assert "nothing of it was kept" in caught.value.message


def test_properties_exactly_at_the_bounds_pass() -> None:
    deepest = {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": 1}}}}}}}}  # 8 levels
    validate_batch([_ok(properties=deepest)], limits=LIMITS, now_ms=NOW_MS, oldest_ms=OLDEST_MS)
    assert _violations([_ok(properties={"x": [[[[[[[[1]]]]]]]]})])  # lists nest too: 9 levels


def test_batch_size_bounds() -> None:
    with pytest.raises(InvalidArgumentError, match="send at least one event"):
        validate_batch([], limits=LIMITS, now_ms=NOW_MS, oldest_ms=OLDEST_MS)
    with pytest.raises(InvalidArgumentError, match="1001 events is over the limit of 1000 per call"):
        validate_batch([_ok()] * 1001, limits=LIMITS, now_ms=NOW_MS, oldest_ms=OLDEST_MS)


def test_the_number_of_violations_listed_is_bounded() -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        validate_batch([_ok(name="")] * 1000, limits=LIMITS, now_ms=NOW_MS, oldest_ms=OLDEST_MS)
    assert len(caught.value.violations) == 100
    assert "900 more not listed" in caught.value.message


def test_batch_ids() -> None:
    validate_batch_id("")
    validate_batch_id("client-7:2026-12-02.0001")
    for bad in ("has{tag}", "x" * 101, "space here"):
        with pytest.raises(InvalidArgumentError, match="batch_id"):
            validate_batch_id(bad)


def test_the_size_bound_counts_escaped_characters_as_json_does() -> None:
    # 1,400 emoji: 1,400 characters, 16,800 bytes as JSON (each a \\uXXXX\\uXXXX pair).
    found = _violations([_ok(properties={"e": "\U0001f600" * 1400})])
    assert "16808 bytes as JSON is over the limit of 16384" in found["events[0].properties"]
