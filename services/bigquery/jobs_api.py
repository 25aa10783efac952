"""The `bigquery.query` jobs through the jobs service's gRPC API (the bigquery service never reads the
jobs store).

The calls present the bigquery service's own identity (`as_the_service`): the caller's `bigquery:query`
scope was checked for the query API, and a key needs no `jobs:*` scope besides. So this module touches only
`bigquery.query` jobs: a job of another task is "not found" here, and is never cancelled.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import json_format

from services.access.context import as_the_service
from services.runtime.errors import (
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    SwitchboardError,
    UnauthenticatedError,
    UnavailableError,
)
from switchboard.jobs.v1 import jobs_pb2, jobs_pb2_grpc

QUEUE = "bigquery"
TASK = "bigquery.query"


class QueryState(enum.Enum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


_STATES = {
    jobs_pb2.JOB_STATE_WAITING: QueryState.PENDING,
    jobs_pb2.JOB_STATE_DELAYED: QueryState.PENDING,
    jobs_pb2.JOB_STATE_ACTIVE: QueryState.RUNNING,
    jobs_pb2.JOB_STATE_COMPLETED: QueryState.DONE,
    jobs_pb2.JOB_STATE_FAILED: QueryState.FAILED,
    jobs_pb2.JOB_STATE_CANCELLED: QueryState.CANCELLED,
    jobs_pb2.JOB_STATE_DEAD_LETTERED: QueryState.FAILED,
}
_CALLER_ERRORS: dict[grpc.StatusCode, type[SwitchboardError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
}


@dataclass(frozen=True)
class QueryJob:
    job_id: str
    state: QueryState
    progress: Mapping[str, Any] = field(default_factory=dict)
    """What the task recorded: `bigquery_job_id`, `location`, and on failure `error`."""
    error_type: str = ""
    error_message: str = ""
    principal: str = ""
    """Who submitted it (`key:billing`, `admin:alice`, `anonymous:…`), from its payload."""
    shared: bool = False
    """RunQuery's: identical queries of any caller share it (single flight)."""


class JobsApi:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._jobs = jobs_pb2_grpc.JobsServiceStub(channel)

    async def submit(self, job_id: str, payload: Mapping[str, Any]) -> None:
        request = jobs_pb2.SubmitJobRequest(queue=QUEUE, task=TASK, job_id=job_id)
        request.payload.update(dict(payload))
        try:
            with as_the_service():
                await self._jobs.SubmitJob(request)
        except grpc.aio.AioRpcError as error:
            raise _translate("submit the query", error) from None

    async def get(self, job_id: str) -> QueryJob:
        try:
            with as_the_service():
                job = await self._jobs.GetJobStatus(jobs_pb2.GetJobStatusRequest(id=job_id))
        except grpc.aio.AioRpcError as error:
            raise _translate("read the query's job", error, job_id=job_id) from None
        return _query_job(job, job_id)

    async def cancel(self, job_id: str) -> QueryJob:
        await self.get(job_id)  # a query's job, or "not found": never another task's
        try:
            with as_the_service():
                job = await self._jobs.CancelJob(jobs_pb2.CancelJobRequest(id=job_id))
        except grpc.aio.AioRpcError as error:
            raise _translate("cancel the query's job", error, job_id=job_id) from None
        return _query_job(job, job_id)


def _query_job(job: jobs_pb2.Job, job_id: str) -> QueryJob:
    if job.task != TASK:
        raise NotFoundError(f"job {job_id!r} is not a query; give the job_id SubmitQuery returned")
    progress = json_format.MessageToDict(job.progress) if job.HasField("progress") else {}
    state = _STATES.get(job.state, QueryState.PENDING)
    principal = job.payload.fields.get("principal")
    shared = job.payload.fields.get("shared")
    return QueryJob(
        job_id=job.id,
        state=state,
        progress=progress if isinstance(progress, dict) else {},
        error_type=job.error.type if job.HasField("error") else "",
        error_message=job.error.message if job.HasField("error") else "",
        principal=principal.string_value if principal is not None else "",
        shared=bool(shared.bool_value) if shared is not None else False,
    )


def _translate(action: str, error: grpc.aio.AioRpcError, *, job_id: str = "") -> SwitchboardError:
    details = str(error.details() or "")[:500]
    if error.code() is grpc.StatusCode.NOT_FOUND and job_id:
        return NotFoundError(f"no query job {job_id!r}; give the job_id SubmitQuery returned")
    caller_error = _CALLER_ERRORS.get(error.code())
    if caller_error is not None:
        return caller_error(details)
    return UnavailableError(f"could not {action} through the jobs service: {error.code().name}: {details}")
