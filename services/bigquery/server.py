"""Wires the bigquery service."""

from __future__ import annotations

from collections.abc import Sequence

from services.bigquery.backend import BigQueryBackend
from services.bigquery.jobs_api import JobsApi
from services.bigquery.queries import Queries
from services.bigquery.servicer import BigQueryServicer, QueryServicer
from services.bigquery.settings import BigQuerySettings
from services.runtime.channels import open_channel
from services.runtime.server import ServiceBinding, ServiceContext
from switchboard.bigquery.v1 import bigquery_pb2, bigquery_pb2_grpc


async def build(settings: BigQuerySettings, context: ServiceContext) -> Sequence[ServiceBinding]:
    backend = BigQueryBackend(settings.backend)
    context.exit_stack.callback(backend.close)
    # Queries are submitted as the caller: the channel passes on the caller's verified credentials,
    # which the jobs service checks itself.
    jobs_channel = open_channel(
        settings.peers.jobs_address,
        default_timeout=settings.call_timeout_seconds,
        service_key=settings.access.service_key.get_secret_value() if settings.access.service_key else None,
    )
    context.exit_stack.push_async_callback(jobs_channel.close)
    queries = Queries(
        backend,
        JobsApi(jobs_channel),
        redis=context.redis,
        audit=context.audit,
        # MERGE POINT: the allow-list (`bigquery.allowed_datasets` of the settings document) is read by
        # the query-cache branch's LimitsSource; wire `lambda: limits.limits.allowed_datasets` here. Until
        # then the default dataset alone is allowed (the guard's rule for an empty list).
        allowed_datasets=lambda: (),
        # Seals what SubmitQuery validated, so the task can tell it from a job submitted past the guard.
        service_key=settings.access.service_key.get_secret_value() if settings.access.service_key else None,
    )
    return [
        ServiceBinding.of(
            bigquery_pb2.DESCRIPTOR.services_by_name["BigQueryService"],
            bigquery_pb2_grpc.add_BigQueryServiceServicer_to_server,
            BigQueryServicer(queries),
            # Its calls wait on BigQuery, far longer than the Redis deadline allows a call.
            redis_deadline=False,
        ),
        ServiceBinding.of(
            bigquery_pb2.DESCRIPTOR.services_by_name["QueryService"],
            bigquery_pb2_grpc.add_QueryServiceServicer_to_server,
            QueryServicer(),  # type: ignore[abstract]  # RunQuery answers UNIMPLEMENTED until built
            redis_deadline=False,
        ),
    ]
