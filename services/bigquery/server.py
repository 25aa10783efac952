"""Wires the bigquery service: BigQueryService, and QueryService with its cache and single flight."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from prometheus_client import start_http_server

from services.bigquery import completion
from services.bigquery.completion_watch import CompletionWatch
from services.bigquery.jobs_api import JobsApi
from services.bigquery.limits_source import LimitsSource
from services.bigquery.queries import Queries
from services.bigquery.query_jobs import RunQueryJobs
from services.bigquery.query_runner import QueryRunner
from services.bigquery.query_servicer import QueryServicer
from services.bigquery.result_cache import ResultCache
from services.bigquery.servicer import BigQueryServicer
from services.bigquery.settings import BigQuerySettings
from services.bigquery.single_flight import SingleFlight
from services.runtime.channels import open_channel
from services.runtime.server import ServiceBinding, ServiceContext
from services.warehouse.backend import BigQueryBackend
from switchboard.bigquery.v1 import bigquery_pb2, bigquery_pb2_grpc

LIMITS_REFRESH_SECONDS = 1.0
COMPLETIONS_RESUBSCRIBE_SECONDS = 0.5


async def build(settings: BigQuerySettings, context: ServiceContext) -> Sequence[ServiceBinding]:
    if settings.metrics_port:
        start_http_server(settings.metrics_port)
    backend = BigQueryBackend(settings.backend)
    context.exit_stack.callback(backend.close)
    # The query jobs are submitted, read and cancelled as the service (services/bigquery/jobs_api.py):
    # a caller's bigquery:query scope is what both query APIs need.
    service_key = settings.access.service_key.get_secret_value() if settings.access.service_key else None
    jobs_channel = open_channel(
        settings.peers.jobs_address, default_timeout=settings.call_timeout_seconds, service_key=service_key
    )
    context.exit_stack.push_async_callback(jobs_channel.close)
    # The run-time limits (wait bounds, cache TTL, the dataset allow-list) of the settings document.
    limits = LimitsSource(context.redis, prefix=settings.jobs_key_prefix)
    await limits.refresh()
    context.run_in_background(
        "query-limits",
        partial(limits.follow, reread_seconds=LIMITS_REFRESH_SECONDS),
        interval_seconds=LIMITS_REFRESH_SECONDS,
    )
    jobs = JobsApi(jobs_channel)
    queries = Queries(
        backend,
        jobs,
        redis=context.redis,
        audit=context.audit,
        allowed_datasets=lambda: limits.limits.allowed_datasets,
        # Seals what SubmitQuery validated, so the task can tell it from a job submitted past the guard.
        service_key=service_key,
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
            _query_servicer(settings, context, limits, jobs, queries),
            # A call waits up to its wait_ms; each Redis, jobs and BigQuery call within it is bounded.
            redis_deadline=False,
        ),
    ]


def _query_servicer(
    settings: BigQuerySettings, context: ServiceContext, limits: LimitsSource, jobs: JobsApi, queries: Queries
) -> QueryServicer:
    # One subscription per process to the end of every query job; RunQuery calls wait on it.
    completions = CompletionWatch(context.redis, completion.channel_for)
    context.run_in_background(
        "query-completions", completions.follow, interval_seconds=COMPLETIONS_RESUBSCRIBE_SECONDS
    )
    prefix = settings.jobs_key_prefix
    runner = QueryRunner(
        ResultCache(context.redis, prefix=prefix, max_entry_bytes=settings.query_cache_max_entry_bytes),
        SingleFlight(context.redis, prefix=prefix, claim_seconds=settings.query_single_flight_seconds),
        RunQueryJobs(jobs, queries),
        completions,
    )
    return QueryServicer(
        runner,
        limits,
        queries,
        settings.backend,
        default_page_size=settings.query_page_size,
        max_page_size=settings.query_max_page_size,
    )
