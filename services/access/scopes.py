"""The scopes, and the one table of which RPC needs which.

Every RPC of every Switchboard service is in `REQUIREMENTS` (a unit test walks the descriptors and fails
on one that is not), so a new RPC cannot ship without saying who may call it.
- `Scope.ADMIN` RPCs always need admin credentials or an `admin`-scoped key.
- A scoped RPC needs a key with that scope when keys are required (`SWITCHBOARD_REQUIRE_API_KEYS`), and
  is open otherwise.
- `PUBLIC` RPCs need nothing (the connection test, which hides details from the unauthenticated).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Final, Literal


class Scope(enum.StrEnum):
    JOBS_READ = "jobs:read"
    JOBS_WRITE = "jobs:write"
    RATELIMIT_CHECK = "ratelimit:check"
    RATELIMIT_ADMIN = "ratelimit:admin"
    BIGQUERY_QUERY = "bigquery:query"
    ANALYTICS_WRITE = "analytics:write"
    ANALYTICS_READ = "analytics:read"
    ADMIN = "admin"


PUBLIC: Final = "public"
Requirement = Scope | Literal["public"]

_JOBS = "switchboard.jobs.v1.JobsService"
_LIMITS = "switchboard.ratelimit.v1.RateLimitService"
_BIGQUERY = "switchboard.bigquery.v1.BigQueryService"
_QUERY = "switchboard.bigquery.v1.QueryService"
_ANALYTICS = "switchboard.analytics.v1.AnalyticsService"
_SETTINGS = "switchboard.admin.v1.SettingsService"
_CONNECTION = "switchboard.admin.v1.ConnectionService"
_KEYS = "switchboard.admin.v1.KeysService"
_AUDIT = "switchboard.admin.v1.AuditService"
_ENVOY_RLS = "envoy.service.ratelimit.v3.RateLimitService"
_ENVOY_AUTHZ = "envoy.service.auth.v3.Authorization"

# Full gRPC method name → what the caller needs.
REQUIREMENTS: Mapping[str, Requirement] = {
    f"/{_JOBS}/SubmitJob": Scope.JOBS_WRITE,
    f"/{_JOBS}/ListJobs": Scope.JOBS_READ,
    f"/{_JOBS}/GetJobStatus": Scope.JOBS_READ,
    f"/{_JOBS}/GetJobResult": Scope.JOBS_READ,
    f"/{_JOBS}/CancelJob": Scope.JOBS_WRITE,
    f"/{_JOBS}/RetryJob": Scope.JOBS_WRITE,
    f"/{_JOBS}/ListQueues": Scope.JOBS_READ,
    f"/{_JOBS}/PauseQueue": Scope.ADMIN,
    f"/{_JOBS}/ResumeQueue": Scope.ADMIN,
    f"/{_JOBS}/CleanQueue": Scope.ADMIN,
    f"/{_JOBS}/ListWorkers": Scope.JOBS_READ,
    f"/{_JOBS}/RemoveJob": Scope.ADMIN,
    f"/{_JOBS}/PromoteJob": Scope.ADMIN,
    f"/{_JOBS}/DuplicateJob": Scope.ADMIN,
    f"/{_JOBS}/BulkJobAction": Scope.ADMIN,
    f"/{_JOBS}/SearchJobs": Scope.JOBS_READ,
    f"/{_JOBS}/GetQueueMetrics": Scope.JOBS_READ,
    f"/{_JOBS}/GetJobLogs": Scope.JOBS_READ,
    f"/{_LIMITS}/ListRules": Scope.RATELIMIT_CHECK,
    f"/{_LIMITS}/PutRule": Scope.ADMIN,
    f"/{_LIMITS}/DeleteRule": Scope.ADMIN,
    f"/{_LIMITS}/CheckRateLimit": Scope.RATELIMIT_CHECK,
    f"/{_LIMITS}/GetUsage": Scope.RATELIMIT_CHECK,
    f"/{_BIGQUERY}/SubmitQuery": Scope.BIGQUERY_QUERY,
    f"/{_BIGQUERY}/GetQueryResults": Scope.BIGQUERY_QUERY,
    f"/{_BIGQUERY}/CancelQuery": Scope.BIGQUERY_QUERY,
    f"/{_QUERY}/RunQuery": Scope.BIGQUERY_QUERY,
    f"/{_ANALYTICS}/IngestEvents": Scope.ANALYTICS_WRITE,
    f"/{_ANALYTICS}/QueryMetrics": Scope.ANALYTICS_READ,
    f"/{_ANALYTICS}/ListEventNames": Scope.ANALYTICS_READ,
    f"/{_SETTINGS}/GetSettings": Scope.ADMIN,
    f"/{_SETTINGS}/UpdateSettings": Scope.ADMIN,
    f"/{_SETTINGS}/ListSettingsHistory": Scope.ADMIN,
    f"/{_CONNECTION}/TestConnection": PUBLIC,
    f"/{_KEYS}/CreateKey": Scope.ADMIN,
    f"/{_KEYS}/ListKeys": Scope.ADMIN,
    f"/{_KEYS}/DeleteKey": Scope.ADMIN,
    f"/{_AUDIT}/ListAuditEntries": Scope.ADMIN,
    # Envoy's own rate-limit call, made by the gateway with no credentials of ours. It only counts
    # requests against limits; the gateway never routes it from outside, and in Kubernetes the
    # NetworkPolicy admits only the gateway to the rate-limit port.
    f"/{_ENVOY_RLS}/ShouldRateLimit": PUBLIC,
    # Envoy's authorization check: it runs the same guard on the credentials it is shown, and grants
    # nothing by itself (a service checks every call again).
    f"/{_ENVOY_AUTHZ}/Check": PUBLIC,
}


def parse_scopes(names: list[str] | tuple[str, ...]) -> frozenset[Scope]:
    """Scope names → scopes; an unknown name → ValueError naming it and the valid ones."""
    scopes = set()
    for name in names:
        try:
            scopes.add(Scope(name))
        except ValueError:
            raise ValueError(
                f"unknown scope {name!r}; use some of: {', '.join(scope.value for scope in Scope)}"
            ) from None
    return frozenset(scopes)
