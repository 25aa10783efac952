"""BigQuery RPCs: proto ⇄ domain, nothing more."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc
from google.cloud.bigquery import SchemaField
from google.protobuf import json_format, struct_pb2

from services.access.context import current_principal
from services.bigquery.jobs_api import QueryState
from services.bigquery.parameters import QueryParameterInput
from services.bigquery.queries import Queries, Submission
from services.bigquery.row_json import schema_to_json
from switchboard.bigquery.v1 import bigquery_pb2, bigquery_pb2_grpc

_STATES = {
    QueryState.PENDING: bigquery_pb2.QUERY_STATE_PENDING,
    QueryState.RUNNING: bigquery_pb2.QUERY_STATE_RUNNING,
    QueryState.DONE: bigquery_pb2.QUERY_STATE_DONE,
    QueryState.FAILED: bigquery_pb2.QUERY_STATE_FAILED,
    QueryState.CANCELLED: bigquery_pb2.QUERY_STATE_CANCELLED,
}


class BigQueryServicer(bigquery_pb2_grpc.BigQueryServiceServicer):
    def __init__(self, queries: Queries) -> None:
        self._queries = queries

    async def SubmitQuery(
        self, request: bigquery_pb2.SubmitQueryRequest, context: grpc.aio.ServicerContext
    ) -> bigquery_pb2.SubmitQueryResponse:
        submitted = await self._queries.submit(
            Submission(
                sql=request.sql,
                parameters=[
                    QueryParameterInput(p.name, p.type, json_format.MessageToDict(p.value))
                    for p in request.parameters
                ],
                dry_run=request.dry_run,
                max_bytes_billed=request.max_bytes_billed,
                labels=dict(request.labels),
                allow_writes=request.allow_writes,
            ),
            principal=current_principal(),
            source=_source(context),
        )
        response = bigquery_pb2.SubmitQueryResponse(
            job_id=submitted.job_id, total_bytes_processed=submitted.total_bytes_processed
        )
        _fill_schema(response.schema, submitted.schema)
        return response

    async def GetQueryResults(
        self, request: bigquery_pb2.GetQueryResultsRequest, context: grpc.aio.ServicerContext
    ) -> bigquery_pb2.GetQueryResultsResponse:
        page = await self._queries.results(
            request.job_id, page_size=request.page_size, token=request.page_token
        )
        response = bigquery_pb2.GetQueryResultsResponse(
            state=_STATES[page.state], total_rows=page.total_rows, next_page_token=page.next_page_token
        )
        _fill_schema(response.schema, page.schema)
        response.rows.extend(_struct(row) for row in page.rows)
        if page.error is not None:
            response.error.reason = page.error.reason
            response.error.message = page.error.message
            response.error.location = page.error.location
        return response

    async def CancelQuery(
        self, request: bigquery_pb2.CancelQueryRequest, context: grpc.aio.ServicerContext
    ) -> bigquery_pb2.CancelQueryResponse:
        state = await self._queries.cancel(request.job_id)
        return bigquery_pb2.CancelQueryResponse(job_id=request.job_id, state=_STATES[state])


def _fill_schema(target: Any, schema: Sequence[SchemaField]) -> None:
    for column in schema_to_json(schema):
        json_format.ParseDict(column, target.add())


def _struct(row: dict[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(row)
    return message


def _source(context: grpc.aio.ServicerContext) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == "x-forwarded-for" and isinstance(value, str):
            return value.split(",")[-1].strip()[:256]
    return str(context.peer() or "")[:256]
