"""Query parameters: validated from the wire, then handed to the BigQuery client.

A parameter is named (`@name` in the SQL) and typed: STRING, INT64, FLOAT64, BOOL, TIMESTAMP, DATE, or
`ARRAY<…>` of one of those. Its value arrives as JSON (a `google.protobuf.Value`) and must fit the type:
- INT64 as a JSON integer or, as proto3 JSON writes 64-bit numbers, a decimal string; inside int64's range
  (a JSON number past 2^53 has already lost digits, so it must come as a string);
- FLOAT64 as a number, or `"NaN"`, `"Infinity"`, `"-Infinity"`;
- BOOL as true or false;
- TIMESTAMP as an RFC 3339 string (no offset means UTC), DATE as `YYYY-MM-DD`;
- null for a scalar of any type; an array holds no nulls (BigQuery's own rule).
Every refusal names the parameter (`parameters[2] (@user_id): …`).
"""

from __future__ import annotations

import datetime
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from google.cloud import bigquery

from services.runtime.errors import FieldViolation, InvalidArgumentError

MAX_PARAMETERS: Final = 100
MAX_STRING_BYTES: Final = 64 * 1024
MAX_ARRAY_LENGTH: Final = 10_000
MAX_TOTAL_BYTES: Final = 1024 * 1024
"""All the parameters' values together, as JSON."""

SCALAR_TYPES: Final = ("STRING", "INT64", "FLOAT64", "BOOL", "TIMESTAMP", "DATE")
_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_ARRAY: Final = re.compile(r"ARRAY\s*<\s*([A-Z0-9]+)\s*>")
_DATE: Final = re.compile(r"\d{4}-\d{2}-\d{2}")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_EXACT_FLOAT_INT: Final = 2**53
_SPECIAL_FLOATS: Final = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


@dataclass(frozen=True)
class QueryParameterInput:
    """A parameter as the caller sent it; `value` is the JSON value (`json_format.MessageToDict`)."""

    name: str
    type: str
    value: Any


@dataclass(frozen=True)
class Parameter:
    """A validated parameter; `value` is the Python value (a list for an array)."""

    name: str
    type: str
    """The scalar type, or the element type of an array."""
    is_array: bool
    value: Any

    @property
    def type_name(self) -> str:
        return f"ARRAY<{self.type}>" if self.is_array else self.type


class _Unfit(ValueError):
    """A value that does not fit its declared type."""


def from_wire(inputs: Sequence[QueryParameterInput]) -> list[Parameter]:
    """Validates every parameter; raises `InvalidArgumentError` with one violation per bad parameter."""
    if len(inputs) > MAX_PARAMETERS:
        raise InvalidArgumentError.for_field(
            "parameters", f"{len(inputs)} given, over the limit of {MAX_PARAMETERS}"
        )
    violations: list[FieldViolation] = []
    parameters: list[Parameter] = []
    seen: set[str] = set()
    for index, given in enumerate(inputs):
        field = f"parameters[{index}]"
        if not _NAME.fullmatch(given.name):
            violations.append(
                FieldViolation(
                    f"{field}.name",
                    f"{given.name[:40]!r} is not a parameter name: use 1-128 letters, digits and _, "
                    "not starting with a digit",
                )
            )
            continue
        label = f"{field} (@{given.name})"
        if given.name.lower() in seen:
            violations.append(FieldViolation(f"{field}.name", f"@{given.name} is given twice"))
            continue
        seen.add(given.name.lower())
        try:
            parameters.append(_parameter(given))
        except _Unfit as unfit:
            violations.append(FieldViolation(label, str(unfit)))
    if not violations:
        size = len(canonical(parameters))
        if size > MAX_TOTAL_BYTES:
            violations.append(
                FieldViolation("parameters", f"{size} bytes of values, over the limit of {MAX_TOTAL_BYTES}")
            )
    if violations:
        message = "; ".join(f"{v.field}: {v.description}" for v in violations)
        raise InvalidArgumentError(message, violations=tuple(violations))
    return parameters


def to_bigquery(
    parameters: Sequence[Parameter],
) -> list[bigquery.ScalarQueryParameter | bigquery.ArrayQueryParameter]:
    """The client's parameter objects."""
    converted: list[bigquery.ScalarQueryParameter | bigquery.ArrayQueryParameter] = []
    for parameter in parameters:
        if parameter.is_array:
            converted.append(bigquery.ArrayQueryParameter(parameter.name, parameter.type, parameter.value))
        else:
            converted.append(bigquery.ScalarQueryParameter(parameter.name, parameter.type, parameter.value))
    return converted


def canonical(parameters: Sequence[Parameter]) -> str:
    """A stable text form of the parameters (sorted by name): for cache keys and size limits."""
    entries = [
        [parameter.name.lower(), parameter.type_name, _jsonable(parameter.value)]
        for parameter in sorted(parameters, key=lambda p: p.name.lower())
    ]
    return json.dumps(entries, separators=(",", ":"), ensure_ascii=False, allow_nan=True)


def _parameter(given: QueryParameterInput) -> Parameter:
    declared = " ".join(given.type.upper().split())
    array = _ARRAY.fullmatch(declared)
    element = array.group(1) if array else declared
    if element not in SCALAR_TYPES:
        raise _Unfit(
            f"type {given.type[:40]!r} is not supported; "
            f"use one of {', '.join(SCALAR_TYPES)} or ARRAY<…> of one"
        )
    if array:
        if given.value is None:
            return Parameter(given.name, element, True, None)
        if not isinstance(given.value, list):
            raise _Unfit(f"an {declared} needs a JSON array, got {_json_kind(given.value)}")
        if len(given.value) > MAX_ARRAY_LENGTH:
            raise _Unfit(f"{len(given.value)} elements, over the limit of {MAX_ARRAY_LENGTH}")
        values = []
        for position, item in enumerate(given.value):
            if item is None:
                raise _Unfit(f"element [{position}] is null; an array cannot hold nulls")
            try:
                values.append(_scalar(element, item))
            except _Unfit as unfit:
                raise _Unfit(f"element [{position}]: {unfit}") from None
        return Parameter(given.name, element, True, values)
    return Parameter(
        given.name, element, False, None if given.value is None else _scalar(element, given.value)
    )


def _scalar(kind: str, value: Any) -> Any:
    return _CONVERTERS[kind](value)


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise _Unfit(f"a STRING needs a JSON string, got {_json_kind(value)}")
    if len(value.encode()) > MAX_STRING_BYTES:
        raise _Unfit(f"the string is over the limit of {MAX_STRING_BYTES} bytes")
    return value


def _float64(value: Any) -> float:
    if isinstance(value, str) and value in _SPECIAL_FLOATS:
        return _SPECIAL_FLOATS[value]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Unfit(f"a FLOAT64 needs a JSON number, got {_json_kind(value)}")
    return float(value)


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Unfit(f"a BOOL needs true or false, got {_json_kind(value)}")
    return value


def _int64(value: Any) -> int:
    if isinstance(value, bool):
        raise _Unfit("an INT64 needs an integer, got a boolean")
    if isinstance(value, float):
        if not value.is_integer():
            raise _Unfit(f"an INT64 needs an integer, got {value!r}")
        if abs(value) > _EXACT_FLOAT_INT:
            raise _Unfit("past 2^53 a JSON number loses digits; send the integer as a string")
        number = int(value)
    elif isinstance(value, int):
        number = value
    elif isinstance(value, str) and re.fullmatch(r"-?\d{1,19}", value):
        number = int(value)
    else:
        raise _Unfit(f"an INT64 needs an integer or a decimal string, got {_json_kind(value)}")
    if not _INT64_MIN <= number <= _INT64_MAX:
        raise _Unfit(f"{number} is outside INT64's range")
    return number


def _timestamp(value: Any) -> datetime.datetime:
    if not isinstance(value, str) or len(value) > 40:
        raise _Unfit(f"a TIMESTAMP needs an RFC 3339 string, got {_json_kind(value)}")
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise _Unfit(f"{value!r} is not an RFC 3339 timestamp (e.g. 2026-12-01T10:00:00Z)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


def _date(value: Any) -> datetime.date:
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise _Unfit(f"a DATE needs a YYYY-MM-DD string, got {_json_kind(value)}")
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        raise _Unfit(f"{value!r} is not a calendar date") from None


_CONVERTERS: Final[dict[str, Callable[[Any], Any]]] = {
    "STRING": _string,
    "INT64": _int64,
    "FLOAT64": _float64,
    "BOOL": _bool,
    "TIMESTAMP": _timestamp,
    "DATE": _date,
}


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _jsonable(value: Any) -> Any:
    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    if isinstance(value, datetime.datetime):
        return value.astimezone(datetime.UTC).isoformat()
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    return value
