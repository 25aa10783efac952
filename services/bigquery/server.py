"""Wires the bigquery service."""

from __future__ import annotations

from collections.abc import Sequence

from services.bigquery.servicer import BigQueryServicer, QueryServicer
from services.bigquery.settings import BigQuerySettings
from services.runtime.server import ServiceBinding, ServiceContext
from switchboard.bigquery.v1 import bigquery_pb2, bigquery_pb2_grpc


async def build(settings: BigQuerySettings, context: ServiceContext) -> Sequence[ServiceBinding]:
    return [
        ServiceBinding.of(
            bigquery_pb2.DESCRIPTOR.services_by_name["BigQueryService"],
            bigquery_pb2_grpc.add_BigQueryServiceServicer_to_server,
            BigQueryServicer(),  # type: ignore[abstract]  # its RPCs answer UNIMPLEMENTED until built
            # Its calls wait on BigQuery, far longer than the Redis deadline allows a call.
            redis_deadline=False,
        ),
        ServiceBinding.of(
            bigquery_pb2.DESCRIPTOR.services_by_name["QueryService"],
            bigquery_pb2_grpc.add_QueryServiceServicer_to_server,
            QueryServicer(),  # type: ignore[abstract]  # its RPCs answer UNIMPLEMENTED until built
            redis_deadline=False,
        ),
    ]
