"""Analytics RPCs: proto ⇄ domain, nothing more."""

from __future__ import annotations

from switchboard.analytics.v1 import analytics_pb2_grpc


class AnalyticsServicer(analytics_pb2_grpc.AnalyticsServiceServicer):
    """The RPCs land with the analytics issue.

    Until then each answers UNIMPLEMENTED, 501 through the gateway.
    """
