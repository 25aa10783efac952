"""Wires the admin service: the connection tester with its probes, the settings, and the servicers."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from redis.exceptions import RedisError

from envoyauthz.v3 import external_auth_pb2, external_auth_pb2_grpc
from services.access.authorizer import Authorizer
from services.access.keys import parse_seed
from services.access.routes import RouteMap
from services.admin.access_servicer import AuditServicer, KeysServicer
from services.admin.authorizer_servicer import AuthorizationServicer
from services.admin.connection import ConnectionTester, Probe
from services.admin.dashboard import server as dashboard_server
from services.admin.dashboard.access import GATEWAY_ROUTES, DashboardAccess, token_secret
from services.admin.dashboard.backend import Backend
from services.admin.dashboard.settings_source import ManagedSettings
from services.admin.dashboard.views import Dashboard
from services.admin.probes import bigquery_probe, redis_probe, service_health_probe
from services.admin.queue_control import JobsQueueControl
from services.admin.servicer import ConnectionServicer, SettingsServicer
from services.admin.settings import AdminSettings
from services.admin.settings_manager import SettingsManager
from services.admin.settings_store import SettingsStore
from services.runtime.channels import open_channel
from services.runtime.server import ServiceBinding, ServiceContext
from services.runtime.settings import ConfigurationError
from services.warehouse.backend import BigQueryBackend
from switchboard.admin.v1 import (
    audit_pb2,
    audit_pb2_grpc,
    connection_pb2,
    connection_pb2_grpc,
    keys_pb2,
    keys_pb2_grpc,
    settings_pb2,
    settings_pb2_grpc,
)
from switchboard.analytics.v1 import analytics_pb2
from switchboard.bigquery.v1 import bigquery_pb2
from switchboard.jobs.v1 import jobs_pb2
from switchboard.ratelimit.v1 import ratelimit_pb2

logger = logging.getLogger(__name__)

# Check name → (peer, the service whose health it asks for).
_SIBLINGS = {
    "jobs-service": ("jobs", jobs_pb2.DESCRIPTOR.services_by_name["JobsService"]),
    "ratelimit-service": ("ratelimit", ratelimit_pb2.DESCRIPTOR.services_by_name["RateLimitService"]),
    "bigquery-service": ("bigquery", bigquery_pb2.DESCRIPTOR.services_by_name["BigQueryService"]),
    "analytics-service": ("analytics", analytics_pb2.DESCRIPTOR.services_by_name["AnalyticsService"]),
}


async def build(settings: AdminSettings, context: ServiceContext) -> Sequence[ServiceBinding]:
    timeout = settings.connection_test_timeout_seconds
    addresses = settings.peers.by_service()
    probes: dict[str, Probe | None] = {
        "redis": redis_probe(
            context.redis, settings.redis.address, deadline_seconds=settings.redis.call_deadline_seconds
        )
    }
    for check_name, (peer, service) in _SIBLINGS.items():
        channel = open_channel(addresses[peer], default_timeout=timeout)
        context.exit_stack.push_async_callback(channel.close)
        probes[check_name] = service_health_probe(channel, service.full_name, addresses[peer], timeout)
    # BigQuery's check runs within the test's own timeout: its client gets no longer deadlines.
    bigquery = BigQueryBackend(
        settings.bigquery.model_copy(
            update={
                "bigquery_threads": 1,
                "bigquery_api_deadline_seconds": timeout,
                "bigquery_api_timeout_seconds": timeout,
            }
        )
    )
    context.exit_stack.callback(bigquery.close)
    probes["bigquery"] = bigquery_probe(bigquery)
    tester = ConnectionTester(probes, timeout_seconds=timeout)
    # Pausing a queue through the settings is done as the admin who asked: the channel passes on the
    # caller's verified credentials, which the jobs service checks itself.
    jobs_channel = open_channel(
        addresses["jobs"],
        default_timeout=settings.call_timeout_seconds,
        service_key=settings.access.service_key.get_secret_value() if settings.access.service_key else None,
    )
    context.exit_stack.push_async_callback(jobs_channel.close)
    store = SettingsStore(
        context.redis,
        prefix=settings.jobs_key_prefix,
        history_max_entries=settings.settings_history_max_entries,
    )
    manager = SettingsManager(store, JobsQueueControl(jobs_channel))
    if settings.dashboard.enabled and context.guard is not None:
        await _start_dashboard(settings, context, ManagedSettings(store, manager))
    return [
        *await _access_bindings(settings, context),
        *_admin_bindings(tester, manager, require_api_keys=settings.access.require_api_keys),
    ]


async def _access_bindings(settings: AdminSettings, context: ServiceContext) -> list[ServiceBinding]:
    """The gateway's authorizer, the keys and the audit trail; none when the runtime opened no access
    control (a test of other concerns that builds the service by hand)."""
    if context.guard is None or context.keys is None or context.audit is None:
        return []
    await _seed_keys(settings, context)
    try:
        descriptors = Path(settings.descriptor_path).read_bytes()  # noqa: ASYNC240 - once, at start
    except OSError as error:
        raise ConfigurationError(
            f"DESCRIPTOR_PATH={settings.descriptor_path!r} cannot be read ({error.strerror}): "
            "run `make protos`"
        ) from None
    routes = RouteMap.from_descriptor_set(descriptors, extra=GATEWAY_ROUTES)
    return [
        ServiceBinding.of(
            external_auth_pb2.DESCRIPTOR.services_by_name["Authorization"],
            external_auth_pb2_grpc.add_AuthorizationServicer_to_server,
            AuthorizationServicer(Authorizer(context.guard, routes, context.audit)),
            # Envoy waits on it for every request: it reads no Redis (the keys are in memory) and
            # answers while Redis is down.
            needs_redis=False,
        ),
        ServiceBinding.of(
            keys_pb2.DESCRIPTOR.services_by_name["KeysService"],
            keys_pb2_grpc.add_KeysServiceServicer_to_server,
            KeysServicer(context.keys),
        ),
        ServiceBinding.of(
            audit_pb2.DESCRIPTOR.services_by_name["AuditService"],
            audit_pb2_grpc.add_AuditServiceServicer_to_server,
            AuditServicer(context.audit),
        ),
    ]


def _admin_bindings(
    tester: ConnectionTester, manager: SettingsManager, *, require_api_keys: bool
) -> list[ServiceBinding]:
    return [
        ServiceBinding.of(
            connection_pb2.DESCRIPTOR.services_by_name["ConnectionService"],
            connection_pb2_grpc.add_ConnectionServiceServicer_to_server,
            ConnectionServicer(tester),
            # The connection test must answer, and say what is wrong, exactly when Redis is down.
            needs_redis=False,
        ),
        ServiceBinding.of(
            settings_pb2.DESCRIPTOR.services_by_name["SettingsService"],
            settings_pb2_grpc.add_SettingsServiceServicer_to_server,
            SettingsServicer(manager, require_api_keys=require_api_keys),
        ),
    ]


async def _start_dashboard(settings: AdminSettings, context: ServiceContext, source: ManagedSettings) -> None:
    """The dashboard's HTTP server. Its channels carry no identity of their own: every call it makes
    carries the operator's credentials, which each service checks."""
    assert context.guard is not None
    addresses = settings.peers.by_service()
    timeout = settings.dashboard.call_timeout_seconds
    jobs = open_channel(addresses["jobs"], default_timeout=timeout)
    limits = open_channel(addresses["ratelimit"], default_timeout=timeout)
    for channel in (jobs, limits):
        context.exit_stack.push_async_callback(channel.close)
    service_key = settings.access.service_key
    dashboard = Dashboard(
        backend=Backend(jobs, limits, timeout=timeout),
        access=DashboardAccess(
            context.guard, secret=token_secret(service_key.get_secret_value() if service_key else None)
        ),
        settings_source=source,
        audit=context.audit,
        settings=settings.dashboard,
    )
    await dashboard_server.start(
        dashboard,
        host=settings.grpc_host,
        port=settings.dashboard.port,
        port_file=settings.dashboard.port_file,
        exit_stack=context.exit_stack,
    )


async def _seed_keys(settings: AdminSettings, context: ServiceContext) -> None:
    """Writes the keys of SWITCHBOARD_API_KEYS and SWITCHBOARD_API_KEYS_FILE; a bad entry stops the start."""
    access = settings.access
    seeds = []
    try:
        if access.api_keys is not None:
            seeds += parse_seed(access.api_keys.get_secret_value())
        if access.api_keys_file:
            text = Path(access.api_keys_file).read_text()  # noqa: ASYNC240 - once, before serving
            seeds += parse_seed(text, source=f"SWITCHBOARD_API_KEYS_FILE ({access.api_keys_file})")
    except (ValueError, OSError) as error:
        raise ConfigurationError(str(error)) from None
    if not seeds:
        return
    assert context.keys is not None
    try:
        await context.keys.seed(seeds)
    except RedisError:
        logger.warning("configured API keys not seeded yet: Redis unreachable; restart to seed them")
