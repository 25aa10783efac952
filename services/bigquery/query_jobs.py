"""RunQuery's `bigquery.query` jobs through the jobs service's gRPC API, as the caller.

The bigquery service never reads the jobs store: it submits and asks about jobs over gRPC, on a channel
that passes on the verified credentials of the caller being served (services.runtime.channels), so the
jobs service checks the caller itself. The first page of a finished job is read by `FirstPages` (the
BigQuery results reader).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import grpc
from google.protobuf import json_format

from services.bigquery.query_runner import JobOutcome, QueryFailure, QueryState
from services.bigquery.result_cache import QueryResult
from services.runtime.errors import (
    FailedPreconditionError,
    InvalidArgumentError,
    PermissionDeniedError,
    SwitchboardError,
    UnauthenticatedError,
    UnavailableError,
)
from switchboard.jobs.v1 import jobs_pb2, jobs_pb2_grpc

QUEUE = "bigquery"
TASK = "bigquery.query"

_STATES = {
    jobs_pb2.JOB_STATE_WAITING: QueryState.PENDING,
    jobs_pb2.JOB_STATE_DELAYED: QueryState.PENDING,
    jobs_pb2.JOB_STATE_ACTIVE: QueryState.RUNNING,
    jobs_pb2.JOB_STATE_COMPLETED: QueryState.DONE,
    jobs_pb2.JOB_STATE_FAILED: QueryState.FAILED,
    jobs_pb2.JOB_STATE_CANCELLED: QueryState.CANCELLED,
    jobs_pb2.JOB_STATE_DEAD_LETTERED: QueryState.FAILED,
}
# What the jobs service refuses because of the caller's request, passed on as such; anything else is the
# jobs service failing us (503).
_CALLER_ERRORS: dict[grpc.StatusCode, type[SwitchboardError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
}


class FirstPages(Protocol):
    async def first_page(self, job_id: str, job_result: Any, *, page_size: int) -> QueryResult:
        """The first page of finished job `job_id`, whose task returned `job_result` (JSON)."""


class JobsApiQueryJobs:
    def __init__(self, channel: grpc.aio.Channel, pages: FirstPages) -> None:
        self._jobs = jobs_pb2_grpc.JobsServiceStub(channel)
        self._pages = pages

    async def submit(self, job_id: str, payload: Mapping[str, Any]) -> None:
        request = jobs_pb2.SubmitJobRequest(queue=QUEUE, task=TASK, job_id=job_id)
        request.payload.update(dict(payload))
        try:
            await self._jobs.SubmitJob(request)
        except grpc.aio.AioRpcError as error:
            raise _translate("submit the query", error) from None

    async def outcome(self, job_id: str, *, page_size: int) -> JobOutcome:
        try:
            response = await self._jobs.GetJobResult(jobs_pb2.GetJobResultRequest(id=job_id))
        except grpc.aio.AioRpcError as error:
            if error.code() is grpc.StatusCode.NOT_FOUND:
                # The flight's claimant has not submitted it yet.
                return JobOutcome(state=QueryState.PENDING)
            raise _translate("read the query's job", error) from None
        state = _STATES.get(response.state, QueryState.PENDING)
        if state is QueryState.DONE:
            result = json_format.MessageToDict(response.result) if response.HasField("result") else None
            page = await self._pages.first_page(job_id, result, page_size=page_size)
            return JobOutcome(state=state, result=page)
        if state.ended:
            failure = response.error
            return JobOutcome(
                state=state,
                error=QueryFailure(
                    reason=failure.type or state.value,
                    message=failure.message or f"the query's job ended {state.value}",
                ),
            )
        return JobOutcome(state=state)


def _translate(action: str, error: grpc.aio.AioRpcError) -> SwitchboardError:
    details = str(error.details() or "")[:500]
    caller_error = _CALLER_ERRORS.get(error.code())
    if caller_error is not None:
        return caller_error(details)
    return UnavailableError(f"could not {action} through the jobs service: {error.code().name}: {details}")
