"""The run-time settings: every setting with its bounds, the stored document, and applying a change.

`RunSettings` is every setting a running Switchboard reads: per queue its policy (the model of
services.queue_policy) and its paused flag, the BigQuery query limits, and the switches. The stored
document (`<JOBS_KEY_PREFIX>:settings`, JSON) holds all of it but the paused flags, which are the queues'
own (the jobs service's PauseQueue / ResumeQueue); its queue policies are stored as overrides of the
defaults, the format services.jobs.queues.PolicyBook reads.

A change is a set of paths (`bigquery.max_wait_ms`, `queue_policies.analytics.backoff.jitter`) with their
new values; `apply_changes` gives the settings with them applied or an `InvalidArgumentError` naming every
field that is wrong and its bound.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, get_args, get_origin

import annotated_types
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from services.analytics_retention import AnalyticsRetention
from services.queue_policy import DEFAULT_POLICIES, QUEUE_NAMES, QueuePolicy, merge_policy, policy_overrides
from services.runtime.errors import FailedPreconditionError, FieldViolation, InvalidArgumentError

MAX_DATASETS = 100

# `dataset` or `project.dataset`, as BigQuery names them.
DatasetName = Annotated[
    str,
    StringConstraints(max_length=1024, pattern=r"^([a-z][a-z0-9\-]{4,28}[a-z0-9]\.)?[A-Za-z0-9_]{1,1024}$"),
]


class BigQueryLimits(BaseModel):
    """The BigQuery query surface's run-time limits."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cache_ttl_seconds: int = Field(default=600, ge=0, le=7 * 86_400)
    default_wait_ms: int = Field(default=2_000, ge=0, le=300_000)
    max_wait_ms: int = Field(default=30_000, ge=100, le=300_000)
    allowed_datasets: tuple[DatasetName, ...] = Field(default=(), max_length=MAX_DATASETS)


class RunSettings(BaseModel):
    """Every run-time setting, as in force."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    queue_policies: dict[str, QueuePolicy] = Field(default_factory=lambda: dict(DEFAULT_POLICIES))
    queue_paused: dict[str, bool] = Field(default_factory=lambda: dict.fromkeys(QUEUE_NAMES, False))
    diagnostics_enabled: bool = True
    bigquery: BigQueryLimits = BigQueryLimits()
    dashboard_read_only: bool = False
    require_api_keys: bool = False
    """Kept so that documents written before it was fixed at deploy still read; never in force (the
    access mode is SWITCHBOARD_REQUIRE_API_KEYS, which GetSettings reports)."""
    analytics: AnalyticsRetention = AnalyticsRetention()


@dataclass(frozen=True)
class StoredSettings:
    """What the settings document holds: its version, when it was written, and the settings."""

    version: int
    update_time_ms: int
    settings: RunSettings
    """With every queue unpaused: the paused flags are not the document's."""


def parse_document(raw: bytes | str | None) -> StoredSettings:
    """The stored document (None: none stored yet, the defaults at version 0); one that does not
    validate → FailedPreconditionError saying what is wrong (it was not written through the API)."""
    if raw is None:
        return StoredSettings(version=0, update_time_ms=0, settings=RunSettings())
    try:
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("the document is not a JSON object")
        version = int(data.pop("version", 0))
        update_time_ms = int(data.pop("update_time_ms", 0))
        overrides = data.pop("queue_policies", {})
        policies = dict(DEFAULT_POLICIES)
        for queue, override in dict(overrides).items():
            if queue not in policies:
                raise ValueError(f"queue_policies.{queue}: no such queue")
            policies[queue] = merge_policy(DEFAULT_POLICIES[queue], override)
        settings = RunSettings.model_validate({**data, "queue_policies": policies})
    except (ValueError, TypeError, ValidationError) as error:
        raise FailedPreconditionError(
            f"the stored settings document does not validate ({str(error)[:500]}); it was not written "
            "through the API: fix or delete it in Redis (deleting restores the defaults)"
        ) from None
    return StoredSettings(version=version, update_time_ms=update_time_ms, settings=settings)


def render_document(settings: RunSettings, *, version: int, update_time_ms: int) -> str:
    """The document to store for `settings` (its paused flags are left out)."""
    data = settings.model_dump(mode="json", exclude={"queue_policies", "queue_paused"})
    overrides = {
        queue: policy_overrides(DEFAULT_POLICIES[queue], policy)
        for queue, policy in settings.queue_policies.items()
    }
    document = {
        "version": version,
        "update_time_ms": update_time_ms,
        "queue_policies": {queue: fields for queue, fields in overrides.items() if fields},
        **data,
    }
    return json.dumps(document, separators=(",", ":"), sort_keys=True)


def apply_changes(
    current: RunSettings, changes: Mapping[str, Any], *, shown_as: Callable[[str], str] = str
) -> RunSettings:
    """`current` with each path of `changes` set to its value (JSON data: ints, strings, lists, objects).

    A path names an existing setting or section; a section's value replaces the whole section. Every
    unknown path and every value out of bounds is reported, each as a violation naming the path as
    `shown_as` gives it (the name the caller used, e.g. the API's `timeout` for `timeout_ms`).
    """
    data = current.model_dump(mode="json")
    violations: list[FieldViolation] = []
    for path, value in changes.items():
        if path in FIXED_AT_DEPLOY:
            violations.append(FieldViolation(shown_as(path), FIXED_AT_DEPLOY[path]))
            continue
        parent, leaf = _locate(data, path)
        if parent is None:
            violations.append(FieldViolation(shown_as(path), f"no such setting; settable: {_SETTABLE}"))
            continue
        parent[leaf] = value
    try:
        updated = RunSettings.model_validate(data)
    except ValidationError as error:
        violations.extend(_violation(problem, shown_as) for problem in error.errors())
        raise _invalid(violations) from None
    limits = updated.bigquery
    if limits.default_wait_ms > limits.max_wait_ms:
        violations.append(
            FieldViolation(
                shown_as("bigquery.default_wait_ms"),
                f"must not exceed bigquery.max_wait_ms ({limits.max_wait_ms} ms); "
                f"got {limits.default_wait_ms}",
            )
        )
    if violations:
        raise _invalid(violations)
    return updated


FIXED_AT_DEPLOY = {
    "require_api_keys": (
        "reported, not settable: every process (the gateway's check and each service's own) takes it from "
        "SWITCHBOARD_REQUIRE_API_KEYS at start, so that no process is ever open while another is locked; "
        "change the variable on all of them and restart"
    ),
}
"""Settings `GetSettings` reports as in force but no update may change, with why."""

_SETTABLE = (
    "queue_policies.<queue>[.<field>], queue_paused.<queue>, diagnostics_enabled, "
    "bigquery[.<field>], dashboard_read_only, analytics[.<field>]; queues: " + ", ".join(QUEUE_NAMES)
)


def _locate(data: dict[str, Any], path: str) -> tuple[dict[str, Any] | None, str]:
    """(the object holding the path's last segment, that segment); (None, "") when there is no such."""
    parts = path.split(".")
    node: Any = data
    for part in parts[:-1]:
        if not isinstance(node, dict) or part not in node:
            return None, ""
        node = node[part]
    if not isinstance(node, dict) or parts[-1] not in node:
        return None, ""
    return node, parts[-1]


def _invalid(violations: list[FieldViolation]) -> InvalidArgumentError:
    summary = "; ".join(f"{v.field}: {v.description}" for v in violations)
    return InvalidArgumentError(
        f"settings not changed: {summary[:2000]}", violations=tuple(violations), reason="INVALID_SETTINGS"
    )


def _violation(problem: Any, shown_as: Callable[[str], str]) -> FieldViolation:
    location = tuple(problem["loc"])
    path = ".".join(str(part) for part in location)
    bound = _bound_of(location)
    got = problem.get("input")
    shown = json.dumps(got)[:100] if isinstance(got, (int, float, str, bool, list)) else type(got).__name__
    description = f"{bound}; got {shown}" if bound else f"{problem['msg']}; got {shown}"
    return FieldViolation(shown_as(path), description)


def _bound_of(location: tuple[Any, ...]) -> str:
    """A number's bounds in words ("must be from 1 to 100"), from the model's own constraints; "" for
    anything else (pydantic's own message says what is wrong with it)."""
    model: Any = RunSettings
    field_info = None
    parts = list(location)
    while parts:
        part = parts.pop(0)
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
            return ""
        field_info = model.model_fields[part]
        model = field_info.annotation
        if get_origin(model) is dict:
            if parts:
                parts.pop(0)  # the queue's name
            model = get_args(model)[1]
    if field_info is None:
        return ""
    low = next((c.ge for c in field_info.metadata if isinstance(c, annotated_types.Ge)), None)
    high = next((c.le for c in field_info.metadata if isinstance(c, annotated_types.Le)), None)
    if low is None or high is None:
        return ""
    name = str(location[-1])
    unit = " ms" if name.endswith("_ms") else " s" if name.endswith("_seconds") else ""
    return f"must be from {low}{unit} to {high}{unit}"
