"""Query parameters: each type's values, the bounds, and refusals that name the parameter."""

from __future__ import annotations

import datetime
import math
from typing import Any

import pytest
from google.cloud import bigquery

from services.bigquery.parameters import (
    MAX_PARAMETERS,
    QueryParameterInput,
    canonical,
    from_wire,
    to_bigquery,
)
from services.runtime.errors import InvalidArgumentError


def one(kind: str, value: Any, name: str = "p") -> Any:
    [parameter] = from_wire([QueryParameterInput(name, kind, value)])
    return parameter.value


def refused(kind: str, value: Any, name: str = "p") -> str:
    with pytest.raises(InvalidArgumentError) as caught:
        from_wire([QueryParameterInput(name, kind, value)])
    return caught.value.message


def test_each_type_takes_its_json_form() -> None:
    assert one("STRING", "hello") == "hello"
    assert one("INT64", 42.0) == 42  # a JSON number arrives as a double
    assert one("int64", "9223372036854775807") == 2**63 - 1  # proto3 JSON's 64-bit form
    assert one("FLOAT64", 1.5) == 1.5 and math.isnan(one("FLOAT64", "NaN"))
    assert one("BOOL", True) is True
    assert one("TIMESTAMP", "2026-12-01T10:00:00Z") == datetime.datetime(2026, 12, 1, 10, tzinfo=datetime.UTC)
    assert one("TIMESTAMP", "2026-12-01T10:00:00").tzinfo == datetime.UTC
    assert one("DATE", "2026-12-01") == datetime.date(2026, 12, 1)
    assert one("ARRAY<STRING>", ["a", "b"]) == ["a", "b"]
    assert one("array< int64 >", [1.0, "2"]) == [1, 2]
    assert one("STRING", None) is None


@pytest.mark.parametrize(
    ("kind", "value", "says"),
    [
        ("INT64", 1.5, "integer"),
        ("INT64", 2.0**60, "string"),
        ("INT64", "9223372036854775808", "range"),
        ("INT64", True, "boolean"),
        ("STRING", 5.0, "JSON string"),
        ("BOOL", "true", "true or false"),
        ("FLOAT64", "1.5", "number"),
        ("TIMESTAMP", "yesterday", "RFC 3339"),
        ("DATE", "2026-13-01", "calendar date"),
        ("DATE", "01/12/2026", "YYYY-MM-DD"),
        ("ARRAY<INT64>", [1.0, None], "null"),
        ("ARRAY<INT64>", 1.0, "JSON array"),
        ("ARRAY<INT64>", [1.0, "x"], "element [1]"),
        ("GEOGRAPHY", "POINT(1 1)", "not supported"),
        ("ARRAY<ARRAY<INT64>>", [[1.0]], "not supported"),
    ],
)
def test_a_value_that_does_not_fit_is_refused_naming_the_parameter(kind: str, value: Any, says: str) -> None:
    message = refused(kind, value, name="user_id")
    assert "@user_id" in message and says in message


def test_names_are_checked_and_unique() -> None:
    assert "parameters[0].name" in refused("STRING", "x", name="1bad")
    with pytest.raises(InvalidArgumentError, match="twice"):
        from_wire([QueryParameterInput("a", "STRING", "x"), QueryParameterInput("A", "STRING", "y")])


def test_every_bad_parameter_is_reported_at_once() -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        from_wire([QueryParameterInput("a", "INT64", "x"), QueryParameterInput("b", "BOOL", 1.0)])
    assert [v.field for v in caught.value.violations] == ["parameters[0] (@a)", "parameters[1] (@b)"]


def test_counts_and_sizes_are_bounded() -> None:
    many = [QueryParameterInput(f"p{i}", "INT64", 1.0) for i in range(MAX_PARAMETERS + 1)]
    with pytest.raises(InvalidArgumentError, match="over the limit of 100"):
        from_wire(many)
    with pytest.raises(InvalidArgumentError, match="over the limit"):
        from_wire([QueryParameterInput("s", "STRING", "x" * (64 * 1024 + 1))])


def test_the_client_gets_typed_parameters() -> None:
    scalar, array = to_bigquery(
        from_wire(
            [QueryParameterInput("n", "INT64", "7"), QueryParameterInput("names", "ARRAY<STRING>", ["a"])]
        )
    )
    assert isinstance(scalar, bigquery.ScalarQueryParameter) and scalar.type_ == "INT64" and scalar.value == 7
    assert isinstance(array, bigquery.ArrayQueryParameter) and array.array_type == "STRING"


def test_the_canonical_form_is_order_independent_and_value_sensitive() -> None:
    a = from_wire([QueryParameterInput("x", "INT64", 1.0), QueryParameterInput("y", "STRING", "s")])
    b = from_wire([QueryParameterInput("y", "STRING", "s"), QueryParameterInput("x", "INT64", "1")])
    c = from_wire([QueryParameterInput("y", "STRING", "s"), QueryParameterInput("x", "INT64", "2")])
    assert canonical(a) == canonical(b) != canonical(c)
