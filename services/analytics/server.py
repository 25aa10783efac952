"""Wires the analytics service: its store, the retention in force, the jobs client and the servicer."""

from __future__ import annotations

from collections.abc import Sequence

from services.analytics.ingestion import Ingestor
from services.analytics.jobs_client import GrpcJobSubmitter
from services.analytics.keys import AnalyticsKeys
from services.analytics.reads import MetricsReader
from services.analytics.retention_source import RetentionSource, settings_key
from services.analytics.servicer import AnalyticsServicer
from services.analytics.settings import AnalyticsSettings
from services.analytics.store import AnalyticsStore
from services.runtime.channels import open_channel
from services.runtime.server import ServiceBinding, ServiceContext
from switchboard.analytics.v1 import analytics_pb2, analytics_pb2_grpc


async def build(settings: AnalyticsSettings, context: ServiceContext) -> Sequence[ServiceBinding]:
    limits = settings.analytics
    store = AnalyticsStore(context.redis, AnalyticsKeys(limits.key_prefix))
    retention = RetentionSource(
        context.redis, settings_key(settings.jobs_key_prefix), reread_seconds=limits.settings_reread_seconds
    )
    await retention.refresh()
    # follow() returns only by failing (its connection dropped): the loop subscribes again.
    context.run_in_background("analytics-retention", retention.follow, interval_seconds=1.0)
    jobs_channel = open_channel(
        settings.peers.jobs_address,
        default_timeout=settings.call_timeout_seconds,
        service_key=settings.access.service_key.get_secret_value() if settings.access.service_key else None,
    )
    context.exit_stack.push_async_callback(jobs_channel.close)
    ingestor = Ingestor(
        store, GrpcJobSubmitter(jobs_channel), limits, retention, export_enabled=limits.export_enabled
    )
    return [
        ServiceBinding.of(
            analytics_pb2.DESCRIPTOR.services_by_name["AnalyticsService"],
            analytics_pb2_grpc.add_AnalyticsServiceServicer_to_server,
            AnalyticsServicer(ingestor, MetricsReader(store, limits, retention)),
            # An ingest waits on the jobs service as well as on Redis; its calls are bounded by
            # CALL_TIMEOUT_SECONDS instead.
            redis_deadline=False,
        ),
    ]
