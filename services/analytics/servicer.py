"""Analytics RPCs: proto ⇄ domain, nothing more."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import struct_pb2, timestamp_pb2

from services.analytics.buckets import Granularity
from services.analytics.events import Event
from services.analytics.ingestion import Ingestor
from services.analytics.reads import MetricsReader
from switchboard.analytics.v1 import analytics_pb2, analytics_pb2_grpc

_GRANULARITIES = {
    analytics_pb2.GRANULARITY_MINUTE: Granularity.MINUTE,
    analytics_pb2.GRANULARITY_HOUR: Granularity.HOUR,
    analytics_pb2.GRANULARITY_DAY: Granularity.DAY,
}


def _plain(value: struct_pb2.Value) -> Any:
    """A protobuf Value as plain JSON data (several times cheaper than json_format.MessageToDict)."""
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return value.string_value
    if kind == "number_value":
        number = value.number_value
        return int(number) if number.is_integer() and abs(number) < 2**53 else number
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return _object(value.struct_value)
    if kind == "list_value":
        return [_plain(item) for item in value.list_value.values]
    return None


def _object(struct: struct_pb2.Struct) -> dict[str, Any]:
    return {key: _plain(item) for key, item in struct.fields.items()}


def _ms(timestamp: timestamp_pb2.Timestamp) -> int:
    return int(timestamp.seconds * 1000 + timestamp.nanos // 1_000_000)


def _timestamp(epoch_ms: int) -> timestamp_pb2.Timestamp:
    timestamp = timestamp_pb2.Timestamp()
    timestamp.FromMilliseconds(epoch_ms)
    return timestamp


class AnalyticsServicer(analytics_pb2_grpc.AnalyticsServiceServicer):
    def __init__(self, ingestor: Ingestor, reader: MetricsReader) -> None:
        self._ingestor = ingestor
        self._reader = reader

    async def IngestEvents(
        self, request: analytics_pb2.IngestEventsRequest, context: grpc.aio.ServicerContext
    ) -> analytics_pb2.IngestEventsResponse:
        events = [
            Event(
                name=event.name,
                user_id=event.user_id,
                timestamp_ms=_ms(event.timestamp) if event.HasField("timestamp") else 0,
                properties=_object(event.properties) if event.HasField("properties") else {},
            )
            for event in request.events
        ]
        result = await self._ingestor.ingest(
            events, batch_id=request.batch_id, encoded_bytes=request.ByteSize()
        )
        return analytics_pb2.IngestEventsResponse(job_id=result.job_id, accepted=result.accepted)

    async def QueryMetrics(
        self, request: analytics_pb2.QueryMetricsRequest, context: grpc.aio.ServicerContext
    ) -> analytics_pb2.QueryMetricsResponse:
        series = await self._reader.series(
            request.event,
            _GRANULARITIES.get(request.granularity),
            start_ms=_ms(request.start_time) if request.HasField("start_time") else 0,
            end_ms=_ms(request.end_time) if request.HasField("end_time") else 0,
        )
        return analytics_pb2.QueryMetricsResponse(
            buckets=[
                analytics_pb2.MetricBucket(
                    start=_timestamp(bucket.start * 1000),
                    count=bucket.count,
                    unique_users=bucket.unique_users,
                )
                for bucket in series.buckets
            ],
            unique_users=series.unique_users,
        )

    async def ListEventNames(
        self, request: analytics_pb2.ListEventNamesRequest, context: grpc.aio.ServicerContext
    ) -> analytics_pb2.ListEventNamesResponse:
        names = await self._reader.names()
        return analytics_pb2.ListEventNamesResponse(
            events=[
                analytics_pb2.EventNameTotal(
                    name=entry.name, total=entry.total, last_seen=_timestamp(entry.last_seen_ms)
                )
                for entry in names
            ]
        )
