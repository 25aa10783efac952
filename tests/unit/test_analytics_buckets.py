"""Bucket maths: which bucket a moment is in, which buckets a query reads, and its bounds."""

from __future__ import annotations

import json

import pytest

from services.analytics.aggregation import fold, script_argument
from services.analytics.buckets import Granularity, query_buckets
from services.analytics.events import Event
from services.analytics.keys import AnalyticsKeys
from services.analytics_retention import AnalyticsRetention
from services.runtime.errors import InvalidArgumentError

RETENTION = AnalyticsRetention()
# 2026-12-02T10:30:15Z
NOW_S = 1_796_207_415
HOUR = 3600


def _range(
    granularity: Granularity, start_s: float, end_s: float, *, max_buckets: int = 1000
) -> tuple[int, ...]:
    return query_buckets(
        granularity,
        int(start_s * 1000),
        int(end_s * 1000),
        now_ms=NOW_S * 1000,
        retention=RETENTION,
        max_buckets=max_buckets,
    ).starts


def test_bucket_starts_round_down_in_utc() -> None:
    assert Granularity.MINUTE.start_of(NOW_S) == NOW_S - 15
    assert Granularity.HOUR.start_of(NOW_S) == NOW_S - 30 * 60 - 15
    assert Granularity.DAY.start_of(NOW_S) == NOW_S - 10 * HOUR - 30 * 60 - 15


def test_a_range_reads_from_the_bucket_of_its_start_to_the_last_starting_before_its_end() -> None:
    hour = Granularity.HOUR.start_of(NOW_S)
    assert _range(Granularity.HOUR, hour - 2 * HOUR, hour) == (hour - 2 * HOUR, hour - HOUR)
    assert _range(Granularity.HOUR, hour - 2 * HOUR + 1, hour + 1) == (hour - 2 * HOUR, hour - HOUR, hour)
    assert _range(Granularity.MINUTE, hour, hour + 0.001) == (hour,)


def test_more_than_the_bucket_limit_is_refused_saying_so() -> None:
    start = Granularity.MINUTE.start_of(NOW_S - 40 * HOUR)
    assert len(_range(Granularity.MINUTE, start, start + 1000 * 60)) == 1000
    with pytest.raises(InvalidArgumentError, match="1001 minute buckets, over the limit of 1000"):
        _range(Granularity.MINUTE, start, start + 1001 * 60)


def test_a_granularity_finer_than_its_retention_names_the_one_to_use() -> None:
    with pytest.raises(InvalidArgumentError, match="use GRANULARITY_HOUR") as caught:
        _range(Granularity.MINUTE, NOW_S - 49 * HOUR, NOW_S - 48 * HOUR - 1800, max_buckets=10_000)
    assert caught.value.violations[0].field == "granularity"
    with pytest.raises(InvalidArgumentError, match="use GRANULARITY_DAY"):
        _range(Granularity.HOUR, NOW_S - 91 * 24 * HOUR, NOW_S - 90 * 24 * HOUR - HOUR)
    with pytest.raises(InvalidArgumentError, match="no granularity keeps data that old"):
        _range(Granularity.DAY, NOW_S - 4 * 365 * 24 * HOUR, NOW_S - 4 * 365 * 24 * HOUR + 86_400)


def test_an_empty_or_backward_range_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="must be after start_time"):
        _range(Granularity.HOUR, NOW_S, NOW_S)


def test_a_batch_folds_into_one_update_per_key_with_its_expiry() -> None:
    minute = Granularity.MINUTE.start_of(NOW_S)
    events = [
        Event("signup", "u1", minute * 1000),
        Event("signup", "u2", minute * 1000 + 59_999),
        Event("signup", "u1", (minute + 60) * 1000),
        Event("signup", "", (minute + 61) * 1000),
        Event("login", "u1", minute * 1000 + 5),
    ]
    delta = fold(events)
    assert delta.counts[(Granularity.MINUTE, minute, "signup")] == 2
    assert delta.counts[(Granularity.MINUTE, minute + 60, "signup")] == 2
    assert delta.counts[(Granularity.HOUR, Granularity.HOUR.start_of(NOW_S), "signup")] == 4
    assert delta.users[(Granularity.MINUTE, minute, "signup")] == {"u1", "u2"}
    assert delta.users[(Granularity.MINUTE, minute + 60, "signup")] == {"u1"}, "anonymous adds no user"
    assert delta.totals == {"signup": 4, "login": 1}
    assert delta.last_seen_ms == {"signup": (minute + 61) * 1000, "login": minute * 1000 + 5}

    keys = AnalyticsKeys("p")
    argument = json.loads(script_argument(delta, keys, RETENTION))
    counts = {suffix: (increment, expires) for suffix, increment, expires in argument["c"]}
    assert counts[f"c:m:{minute}:signup"] == (2, minute + 60 + 48 * HOUR)
    day = Granularity.DAY.start_of(NOW_S)
    assert counts[f"c:d:{day}:signup"] == (4, day + 86_400 + 3 * 365 * 86_400)
    assert len(argument["c"]) == 4 + 3, "signup: two minutes, one hour, one day; login: one of each"
    assert keys.count(Granularity.MINUTE, minute, "signup") == f"p:{{analytics}}:c:m:{minute}:signup"
