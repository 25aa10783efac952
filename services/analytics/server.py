"""Wires the analytics service."""

from __future__ import annotations

from collections.abc import Sequence

from services.analytics.servicer import AnalyticsServicer
from services.analytics.settings import AnalyticsSettings
from services.runtime.server import ServiceBinding, ServiceContext
from switchboard.analytics.v1 import analytics_pb2, analytics_pb2_grpc


async def build(settings: AnalyticsSettings, context: ServiceContext) -> Sequence[ServiceBinding]:
    return [
        ServiceBinding.of(
            analytics_pb2.DESCRIPTOR.services_by_name["AnalyticsService"],
            analytics_pb2_grpc.add_AnalyticsServiceServicer_to_server,
            AnalyticsServicer(),  # type: ignore[abstract]  # its RPCs answer UNIMPLEMENTED until built
        ),
    ]
