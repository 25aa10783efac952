"""Result rows as JSON, typed as proto3 JSON writes them.

INT64 (and NUMERIC, BIGNUMERIC) as strings, since a JSON number loses digits past 2^53; FLOAT64 as a
number, or "NaN" / "Infinity" / "-Infinity"; TIMESTAMP as RFC 3339 in UTC; DATE, TIME, DATETIME in ISO
8601; BYTES as base64; NULL as null; a RECORD as an object of its fields; a REPEATED field as an array.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
from collections.abc import Mapping, Sequence
from typing import Any

from google.cloud.bigquery import SchemaField

_INTEGERS = {"INTEGER", "INT64"}
_DECIMALS = {"NUMERIC", "BIGNUMERIC", "DECIMAL", "BIGDECIMAL"}
_FLOATS = {"FLOAT", "FLOAT64"}
_RECORDS = {"RECORD", "STRUCT"}


def row_to_json(row: Mapping[str, Any], schema: Sequence[SchemaField]) -> dict[str, Any]:
    return {field.name: field_to_json(row.get(field.name), field) for field in schema}


def field_to_json(value: Any, field: SchemaField) -> Any:
    if field.mode == "REPEATED":
        return [_scalar(item, field) for item in (value or [])]
    return _scalar(value, field)


def _scalar(value: Any, field: SchemaField) -> Any:  # noqa: PLR0911 - one answer per type
    if value is None:
        return None
    kind = (field.field_type or "").upper()
    if kind in _RECORDS:
        return row_to_json(value, field.fields)
    if kind in _INTEGERS or kind in _DECIMALS:
        return str(value)
    if kind in _FLOATS:
        number = float(value)
        if math.isnan(number):
            return "NaN"
        if math.isinf(number):
            return "Infinity" if number > 0 else "-Infinity"
        return number
    if kind == "TIMESTAMP" and isinstance(value, dt.datetime):
        return _rfc3339(value)
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


def _rfc3339(value: dt.datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    text = value.astimezone(dt.UTC).isoformat(timespec="microseconds")
    # Drop a zero fraction and write UTC as Z, as protobuf's Timestamp JSON does.
    text = text.replace("+00:00", "Z")
    return text.replace(".000000Z", "Z")


def schema_to_json(schema: Sequence[SchemaField]) -> list[dict[str, Any]]:
    """The schema as SchemaField messages in JSON: name, type, mode, nested fields."""
    return [
        {
            "name": field.name,
            "type": field.field_type,
            "mode": field.mode or "NULLABLE",
            "fields": schema_to_json(field.fields),
        }
        for field in schema
    ]
