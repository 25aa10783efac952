"""The memo of the SQL guard's verdicts: remembered for the same inputs only, refusals never remembered."""

from __future__ import annotations

import pytest

from services.bigquery import guard_memo
from services.runtime.errors import InvalidArgumentError

SQL = "SELECT name FROM sample.events"


def test_an_accepted_query_is_inspected_once_for_the_same_inputs() -> None:
    first = guard_memo.inspect_read(SQL, default_dataset="sample", allowed_datasets=(), project=None)
    again = guard_memo.inspect_read(SQL, default_dataset="sample", allowed_datasets=[], project=None)
    assert again is first
    assert first.datasets == frozenset({"sample"})


def test_the_allow_list_is_part_of_the_verdict() -> None:
    other = "SELECT name FROM other.events"
    with pytest.raises(InvalidArgumentError, match="other"):
        guard_memo.inspect_read(other, default_dataset="sample", allowed_datasets=(), project=None)
    allowed = guard_memo.inspect_read(
        other, default_dataset="sample", allowed_datasets=("sample", "other"), project=None
    )
    assert allowed.datasets == frozenset({"other"})
    # The narrower list still refuses: its verdict was never replaced by the wider one's.
    with pytest.raises(InvalidArgumentError, match="other"):
        guard_memo.inspect_read(other, default_dataset="sample", allowed_datasets=(), project=None)


def test_writes_are_refused_every_time_and_long_sql_is_not_remembered() -> None:
    for _ in range(2):
        with pytest.raises(InvalidArgumentError, match="DELETE"):
            guard_memo.inspect_read(
                "DELETE FROM sample.events WHERE TRUE",
                default_dataset="sample",
                allowed_datasets=(),
                project=None,
            )
    long_sql = SQL + " " * guard_memo.MAX_SQL_CHARS
    first = guard_memo.inspect_read(long_sql, default_dataset="sample", allowed_datasets=(), project=None)
    again = guard_memo.inspect_read(long_sql, default_dataset="sample", allowed_datasets=(), project=None)
    assert again == first and again is not first
