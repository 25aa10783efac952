"""Admin RPCs: proto ⇄ domain, nothing more."""

from __future__ import annotations

import json
from typing import Any

import grpc
from google.protobuf import timestamp_pb2

from services.access.context import current_principal
from services.access.principal import PrincipalKind
from services.admin.connection import CheckStatus, ConnectionReport, ConnectionTester
from services.admin.settings_manager import SettingsManager, SettingsSnapshot
from services.admin.settings_store import Revision
from services.queue_policy import BackoffType
from services.queue_policy.wire import policy_to_proto
from services.runtime.errors import InvalidArgumentError
from switchboard.admin.v1 import connection_pb2, connection_pb2_grpc, settings_pb2, settings_pb2_grpc
from switchboard.jobs.v1 import jobs_pb2

_STATUS = {
    CheckStatus.PASSED: connection_pb2.CHECK_STATUS_PASSED,
    CheckStatus.FAILED: connection_pb2.CHECK_STATUS_FAILED,
    CheckStatus.NOT_CONFIGURED: connection_pb2.CHECK_STATUS_NOT_CONFIGURED,
}


class ConnectionServicer(connection_pb2_grpc.ConnectionServiceServicer):
    def __init__(self, tester: ConnectionTester) -> None:
        self._tester = tester

    async def TestConnection(
        self, request: connection_pb2.TestConnectionRequest, context: grpc.aio.ServicerContext
    ) -> connection_pb2.TestConnectionResponse:
        report = _report_to_proto(await self._tester.run())
        if current_principal().kind is PrincipalKind.ANONYMOUS:
            # Versions, addresses and error texts help an attacker: the unauthenticated get pass/fail only.
            for check in report.checks:
                check.detail = "" if check.ok else "failed (sign in to see why)"
        return report


class SettingsServicer(settings_pb2_grpc.SettingsServiceServicer):
    def __init__(self, settings: SettingsManager, *, require_api_keys: bool) -> None:
        self._settings = settings
        self._require_api_keys = require_api_keys  # in force: SWITCHBOARD_REQUIRE_API_KEYS

    async def GetSettings(
        self, request: settings_pb2.GetSettingsRequest, context: grpc.aio.ServicerContext
    ) -> settings_pb2.Settings:
        return _settings_to_proto(await self._settings.get(), self._require_api_keys)

    async def UpdateSettings(
        self, request: settings_pb2.UpdateSettingsRequest, context: grpc.aio.ServicerContext
    ) -> settings_pb2.Settings:
        expected = request.expected_version if request.HasField("expected_version") else None
        if expected is not None and expected < 0:
            raise InvalidArgumentError.for_field("expected_version", "use the version GetSettings answered")
        changes = _changes_from_proto(request.settings, list(request.update_mask.paths))
        snapshot = await self._settings.update(
            changes,
            expected_version=expected,
            principal=current_principal().label,
            shown_as=_shown_as,
        )
        return _settings_to_proto(snapshot, self._require_api_keys)

    async def ListSettingsHistory(
        self, request: settings_pb2.ListSettingsHistoryRequest, context: grpc.aio.ServicerContext
    ) -> settings_pb2.ListSettingsHistoryResponse:
        revisions, next_token = await self._settings.history(
            page_size=request.page_size or 50, page_token=request.page_token
        )
        return settings_pb2.ListSettingsHistoryResponse(
            revisions=[_revision_to_proto(revision) for revision in revisions], next_page_token=next_token
        )


MAX_MASK_PATHS = 200
MAX_PATH_LENGTH = 200

# A queue policy's fields whose API name differs from the model's (the API has durations; the model ms).
_POLICY_ALIASES = {
    "timeout": "timeout_ms",
    "lease_timeout": "lease_ms",
    "backoff.base_delay": "backoff.base_delay_ms",
    "backoff.max_delay": "backoff.max_delay_ms",
    "remove_on_complete.age": "remove_on_complete.age_seconds",
    "remove_on_fail.age": "remove_on_fail.age_seconds",
}
_POLICY_NAMES = {model: api for api, model in _POLICY_ALIASES.items()}
_BACKOFF_TYPES = {
    jobs_pb2.BACKOFF_TYPE_FIXED: BackoffType.FIXED.value,
    jobs_pb2.BACKOFF_TYPE_EXPONENTIAL: BackoffType.EXPONENTIAL.value,
}


def _changes_from_proto(settings: settings_pb2.Settings, paths: list[str]) -> dict[str, Any]:
    """The update mask's paths (API names) → model path → new value (JSON data)."""
    if not paths:
        raise InvalidArgumentError.for_field(
            "update_mask",
            "name the settings to change, e.g. queue_policies.analytics.max_attempts (queuePolicies.analytics"
            ".maxAttempts in JSON)",
        )
    if len(paths) > MAX_MASK_PATHS:
        raise InvalidArgumentError.for_field("update_mask", f"at most {MAX_MASK_PATHS} paths at once")
    if any(len(path) > MAX_PATH_LENGTH for path in paths):
        raise InvalidArgumentError.for_field("update_mask", f"a path is at most {MAX_PATH_LENGTH} characters")
    sections: dict[str, Any] = {
        "diagnostics_enabled": settings.diagnostics_enabled,
        "dashboard_read_only": settings.dashboard_read_only,
        "require_api_keys": settings.require_api_keys,
        "bigquery": {
            "cache_ttl_seconds": settings.bigquery.cache_ttl_seconds,
            "default_wait_ms": settings.bigquery.default_wait_ms,
            "max_wait_ms": settings.bigquery.max_wait_ms,
            "allowed_datasets": list(settings.bigquery.allowed_datasets),
        },
        "analytics": {
            "minute_retention_seconds": settings.analytics.minute_retention_seconds,
            "hour_retention_seconds": settings.analytics.hour_retention_seconds,
            "day_retention_seconds": settings.analytics.day_retention_seconds,
        },
    }
    changes: dict[str, Any] = {}
    for path in paths:
        head, _, rest = path.partition(".")
        if head in ("queue_policies", "queue_paused") and rest:
            queue, _, field = rest.partition(".")
            if head == "queue_paused":
                changes[path] = settings.queue_paused.get(queue, False)
                continue
            if queue not in settings.queue_policies:
                raise InvalidArgumentError.for_field(
                    path, f"named in update_mask but settings.queue_policies has no entry {queue!r}"
                )
            policy = _policy_from_proto(settings.queue_policies[queue])
            model_field = _POLICY_ALIASES.get(field, field)
            changes[f"{head}.{queue}.{model_field}" if field else path] = (
                _pick(policy, model_field) if field else policy
            )
        elif head in sections and (not rest or isinstance(sections[head], dict)):
            changes[path] = _pick(sections[head], rest) if rest else sections[head]
        else:
            changes[path] = None  # not a setting: the settings model names it as such
    return changes


def _pick(data: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def _shown_as(path: str) -> str:
    """A model path as the API names it (`...timeout_ms` → `...timeout`)."""
    head, _, rest = path.partition(".")
    queue, _, field = rest.partition(".")
    if head == "queue_policies" and field in _POLICY_NAMES:
        return f"{head}.{queue}.{_POLICY_NAMES[field]}"
    return path


def _policy_from_proto(policy: jobs_pb2.QueuePolicy) -> dict[str, Any]:
    return {
        "max_attempts": policy.max_attempts,
        "backoff": {
            "type": _BACKOFF_TYPES.get(policy.backoff.type, "unspecified"),
            "base_delay_ms": policy.backoff.base_delay.ToMilliseconds(),
            "max_delay_ms": policy.backoff.max_delay.ToMilliseconds(),
            "jitter": policy.backoff.jitter,
        },
        "timeout_ms": policy.timeout.ToMilliseconds(),
        "concurrency": policy.concurrency,
        "lease_ms": policy.lease_timeout.ToMilliseconds(),
        "max_deliveries": policy.max_deliveries,
        "remove_on_complete": _retention_from_proto(policy.remove_on_complete),
        "remove_on_fail": _retention_from_proto(policy.remove_on_fail),
        "rate_limit_rule": policy.rate_limit_rule,
    }


def _retention_from_proto(retention: jobs_pb2.RetentionPolicy) -> dict[str, Any]:
    return {"age_seconds": retention.age.ToSeconds(), "count": retention.count}


def _settings_to_proto(snapshot: SettingsSnapshot, require_api_keys: bool) -> settings_pb2.Settings:
    settings = snapshot.settings
    message = settings_pb2.Settings(
        version=snapshot.version,
        queue_policies={queue: policy_to_proto(policy) for queue, policy in settings.queue_policies.items()},
        diagnostics_enabled=settings.diagnostics_enabled,
        queue_paused=settings.queue_paused,
        bigquery=settings_pb2.BigQuerySettings(
            cache_ttl_seconds=settings.bigquery.cache_ttl_seconds,
            default_wait_ms=settings.bigquery.default_wait_ms,
            max_wait_ms=settings.bigquery.max_wait_ms,
            allowed_datasets=settings.bigquery.allowed_datasets,
        ),
        dashboard_read_only=settings.dashboard_read_only,
        require_api_keys=require_api_keys,
        analytics=settings_pb2.AnalyticsSettings(
            minute_retention_seconds=settings.analytics.minute_retention_seconds,
            hour_retention_seconds=settings.analytics.hour_retention_seconds,
            day_retention_seconds=settings.analytics.day_retention_seconds,
        ),
    )
    if snapshot.update_time_ms:
        message.update_time.FromMilliseconds(snapshot.update_time_ms)
    return message


def _revision_to_proto(revision: Revision) -> settings_pb2.SettingsRevision:
    message = settings_pb2.SettingsRevision(
        version=revision.version,
        principal=revision.principal,
        changes=[
            settings_pb2.SettingChange(
                path=change.path, old_value=json.dumps(change.old), new_value=json.dumps(change.new)
            )
            for change in revision.changes
        ],
    )
    message.change_time.FromMilliseconds(revision.time_ms)
    return message


def _report_to_proto(report: ConnectionReport) -> connection_pb2.TestConnectionResponse:
    checked_at = timestamp_pb2.Timestamp()
    checked_at.FromDatetime(report.checked_at)
    return connection_pb2.TestConnectionResponse(
        ok=report.ok,
        checked_at=checked_at,
        checks=[
            connection_pb2.ConnectionCheck(
                name=check.name,
                ok=check.ok,
                latency_ms=check.latency_ms,
                detail=check.detail,
                status=_STATUS[check.status],
            )
            for check in report.checks
        ],
    )
