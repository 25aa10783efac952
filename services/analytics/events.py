"""An ingested event and the checks a batch of them must pass before anything of it is kept.

A batch is accepted whole or not at all: every bad event is reported, each as a field violation naming
its index (`events[3].name`), in one InvalidArgumentError.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from services.analytics.settings import AnalyticsLimits
from services.runtime.errors import FieldViolation, InvalidArgumentError

NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_.:\-]*$")
BATCH_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.:\-]{1,100}$")
# Violations reported in one answer at most; the message says how many more there were.
MAX_VIOLATIONS = 100


@dataclass(frozen=True)
class Event:
    name: str
    user_id: str
    timestamp_ms: int
    properties: dict[str, Any] = field(default_factory=dict)


def validate_batch(
    events: Sequence[Event],
    *,
    limits: AnalyticsLimits,
    now_ms: int,
    oldest_ms: int,
) -> None:
    """Raises InvalidArgumentError with a violation per bad event; `oldest_ms` is the oldest timestamp the
    minute buckets still keep."""
    if not events:
        raise InvalidArgumentError.for_field("events", "send at least one event")
    if len(events) > limits.max_events_per_batch:
        raise InvalidArgumentError.for_field(
            "events",
            f"{len(events)} events is over the limit of {limits.max_events_per_batch} per call; "
            "split the batch",
        )
    violations: list[FieldViolation] = []
    for index, event in enumerate(events):
        violations.extend(_event_violations(index, event, limits, now_ms=now_ms, oldest_ms=oldest_ms))
    if violations:
        shown = violations[:MAX_VIOLATIONS]
        more = len(violations) - len(shown)
        summary = "; ".join(f"{v.field}: {v.description}" for v in shown[:3])
        raise InvalidArgumentError(
            f"batch rejected, nothing of it was kept: {len(violations)} problem(s): {summary}"
            + (f" (and {more} more not listed)" if more else ""),
            violations=tuple(shown),
            reason="INVALID_EVENTS",
        )


def _event_violations(
    index: int, event: Event, limits: AnalyticsLimits, *, now_ms: int, oldest_ms: int
) -> list[FieldViolation]:
    where = f"events[{index}]"
    found: list[FieldViolation] = []
    if not event.name:
        found.append(FieldViolation(f"{where}.name", "give the event a name"))
    elif len(event.name) > limits.max_name_length:
        found.append(
            FieldViolation(
                f"{where}.name", f"{len(event.name)} characters is over the limit of {limits.max_name_length}"
            )
        )
    elif not NAME_PATTERN.match(event.name):
        found.append(
            FieldViolation(
                f"{where}.name", "use a letter, then letters, digits and . _ : - (e.g. 'signup.completed')"
            )
        )
    if len(event.user_id) > limits.max_user_id_length:
        found.append(
            FieldViolation(
                f"{where}.user_id",
                f"{len(event.user_id)} characters is over the limit of {limits.max_user_id_length}",
            )
        )
    if event.timestamp_ms > now_ms + limits.max_future_skew_seconds * 1000:
        found.append(
            FieldViolation(
                f"{where}.timestamp",
                f"more than {limits.max_future_skew_seconds} s in the future; "
                "send the time it happened (UTC)",
            )
        )
    elif event.timestamp_ms < oldest_ms:
        found.append(
            FieldViolation(
                f"{where}.timestamp",
                f"older than the minute buckets' retention of {(now_ms - oldest_ms) // 1000} s; "
                "events that old cannot be counted",
            )
        )
    found.extend(_properties_violations(where, event.properties, limits))
    return found


def _properties_violations(
    where: str, properties: dict[str, Any], limits: AnalyticsLimits
) -> list[FieldViolation]:
    depth, most_bytes = _shape(properties)
    if depth > limits.max_properties_depth:
        return [
            FieldViolation(
                f"{where}.properties",
                f"nested {depth} levels deep, over the limit of {limits.max_properties_depth}; flatten it",
            )
        ]
    if most_bytes <= limits.max_properties_bytes:
        return []  # cannot be over: no need to encode it
    size = len(json.dumps(properties, separators=(",", ":")).encode())
    if size > limits.max_properties_bytes:
        return [
            FieldViolation(
                f"{where}.properties",
                f"{size} bytes as JSON is over the limit of {limits.max_properties_bytes}; send less",
            )
        ]
    return []


# The most bytes one character of a string takes in JSON (a surrogate pair, `\uXXXX\uXXXX`), and a
# number or literal at most.
_MOST_PER_CHARACTER = 12
_MOST_PER_SCALAR = 32


def _shape(value: Any) -> tuple[int, int]:
    """(levels of objects and lists: {} is 1, {"a": {"b": 1}} is 2; an upper bound of its size as compact
    JSON); iterative, so no input can recurse deep."""
    deepest = 0
    most = 0
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, level = pending.pop()
        if isinstance(item, dict):
            deepest = max(deepest, level)
            most += 2 + len(item)  # braces, colons and commas
            for key, child in item.items():
                most += _MOST_PER_CHARACTER * len(key) + 2
                pending.append((child, level + 1))
        elif isinstance(item, list):
            deepest = max(deepest, level)
            most += 2 + len(item)
            pending.extend((child, level + 1) for child in item)
        elif isinstance(item, str):
            most += _MOST_PER_CHARACTER * len(item) + 2
        else:
            most += _MOST_PER_SCALAR
    return deepest, most


def validate_batch_id(batch_id: str) -> None:
    if batch_id and not BATCH_ID_PATTERN.match(batch_id):
        raise InvalidArgumentError.for_field(
            "batch_id", "use 1 to 100 letters, digits and . _ : - (or leave it empty for a generated id)"
        )
