"""QueryService: RunQuery requests ⇄ the query runner, nothing more (the logic is `query_runner`)."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import json_format, struct_pb2

from services.access.context import current_principal
from services.bigquery import guard_memo, parameters
from services.bigquery.jobs_api import QueryState
from services.bigquery.limits_source import LimitsSource
from services.bigquery.queries import Queries
from services.bigquery.query_runner import QueryAnswer, QueryRequest, QueryRunner
from services.bigquery.result_cache import MAX_CACHE_TTL_SECONDS, QueryIdentity
from services.runtime.errors import FailedPreconditionError, InvalidArgumentError
from services.warehouse.settings import BackendKind, BigQueryBackendSettings
from switchboard.bigquery.v1 import bigquery_pb2, bigquery_pb2_grpc

_STATES = {
    QueryState.PENDING: bigquery_pb2.QUERY_STATE_PENDING,
    QueryState.RUNNING: bigquery_pb2.QUERY_STATE_RUNNING,
    QueryState.DONE: bigquery_pb2.QUERY_STATE_DONE,
    QueryState.FAILED: bigquery_pb2.QUERY_STATE_FAILED,
    QueryState.CANCELLED: bigquery_pb2.QUERY_STATE_CANCELLED,
}


class QueryServicer(bigquery_pb2_grpc.QueryServiceServicer):
    def __init__(
        self,
        runner: QueryRunner,
        limits: LimitsSource,
        queries: Queries,
        backend: BigQueryBackendSettings,
        *,
        default_page_size: int,
        max_page_size: int,
    ) -> None:
        self._runner = runner
        self._limits = limits
        self._queries = queries
        self._backend = backend
        self._default_page_size = default_page_size
        self._max_page_size = max_page_size

    async def RunQuery(
        self, request: bigquery_pb2.RunQueryRequest, context: grpc.aio.ServicerContext
    ) -> bigquery_pb2.RunQueryResponse:
        limits = self._limits.limits
        wait_ms = _bounded(
            "wait_ms", request.wait_ms, default=limits.default_wait_ms, maximum=limits.max_wait_ms, unit="ms"
        )
        ttl_seconds = _bounded(
            "cache_ttl_seconds",
            request.cache_ttl_seconds,
            default=limits.cache_ttl_seconds,
            maximum=MAX_CACHE_TTL_SECONDS,
            unit="s",
        )
        page_size = _bounded(
            "page_size", request.page_size, default=self._default_page_size, maximum=self._max_page_size
        )
        backend = self._backend
        inspection = guard_memo.inspect_read(
            request.sql,
            default_dataset=backend.bigquery_default_dataset,
            allowed_datasets=limits.allowed_datasets,
            project=backend.project,
        )
        given = [
            parameters.QueryParameterInput(p.name, p.type, json_format.MessageToDict(p.value))
            for p in request.parameters
        ]
        identity = QueryIdentity(
            normalized_sql=inspection.normalized_sql,
            parameters=parameters.canonical(parameters.from_wire(given)),
            default_dataset=backend.bigquery_default_dataset or "",
        )
        if backend.kind is BackendKind.NOT_CONFIGURED:
            raise FailedPreconditionError(
                "BigQuery is not configured: set GOOGLE_CLOUD_PROJECT (real BigQuery) or "
                "BIGQUERY_EMULATOR_HOST (the emulator)"
            )
        answer = await self._runner.run(
            QueryRequest(
                identity=identity,
                # The bigquery.query task's payload, as SubmitQuery gives it (the task checks it again).
                job_payload={
                    "sql": request.sql,
                    "parameters": [{"name": p.name, "type": p.type, "value": p.value} for p in given],
                    "max_bytes_billed": self._queries.bytes_cap(0),
                    "labels": {},
                    "principal": current_principal().label,
                    "shared": True,  # single flight: identical queries of any caller share the job
                },
                use_cache=request.use_cache if request.HasField("use_cache") else True,
                ttl_seconds=ttl_seconds,
                wait_seconds=wait_ms / 1000,
                page_size=page_size,
            )
        )
        return _response(answer)


def _bounded(field: str, value: int, *, default: int, maximum: int, unit: str = "") -> int:
    """`value`, or `default` for 0 (unset); out of 0..`maximum` → 400 naming the field and the bounds."""
    if value < 0 or value > maximum:
        raise InvalidArgumentError.for_field(
            field,
            f"{value:,}{unit} is out of range: give 1-{maximum:,}{unit}, "
            f"or 0 for the default ({default:,}{unit})",
        )
    return value or default


def _response(answer: QueryAnswer) -> bigquery_pb2.RunQueryResponse:
    response = bigquery_pb2.RunQueryResponse(
        job_id=answer.job_id,
        state=_STATES[answer.state],
        complete=answer.complete,
        cached=answer.cached,
        not_cached_reason=answer.not_cached_reason,
    )
    if answer.result is not None:
        result = answer.result
        for column in result.schema:
            json_format.ParseDict(dict(column), response.schema.add(), ignore_unknown_fields=True)
        response.rows.extend(_struct(row) for row in result.rows)
        response.total_rows = result.total_rows
        response.next_page_token = result.next_page_token
    if answer.error is not None:
        response.error.reason = answer.error.reason
        response.error.message = answer.error.message
        response.error.location = answer.error.location
    return response


def _struct(row: Any) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(row)
    return message
