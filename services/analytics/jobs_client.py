"""Submitting analytics jobs to the jobs service over gRPC, as the analytics service itself.

The call carries the deployment's service key, never the ingesting caller's credentials: a key allowed
`analytics:write` need not be allowed to submit jobs, and the jobs are the service's, not the caller's.
"""

from __future__ import annotations

import logging
from typing import Any

import grpc
from google.protobuf import struct_pb2

from services.access.context import as_the_service
from services.runtime.errors import UnavailableError
from switchboard.jobs.v1 import jobs_pb2, jobs_pb2_grpc

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 1.0


class GrpcJobSubmitter:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = jobs_pb2_grpc.JobsServiceStub(channel)

    async def submit(self, *, queue: str, task: str, payload: dict[str, Any], job_id: str) -> str:
        body = struct_pb2.Struct()
        body.update(payload)
        request = jobs_pb2.SubmitJobRequest(queue=queue, task=task, payload=body, job_id=job_id)
        try:
            with as_the_service():  # not on the caller's behalf: it needs no jobs:write
                job = await self._stub.SubmitJob(request)
        except grpc.aio.AioRpcError as error:
            raise _unavailable(error, task) from None
        return str(job.id)


def _unavailable(error: grpc.aio.AioRpcError, task: str) -> UnavailableError:
    code = error.code()
    if code in {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}:
        message = "the jobs service did not take the batch's job; retry in a moment with the same batch_id"
    elif code is grpc.StatusCode.INVALID_ARGUMENT:
        # Most likely no live worker has registered the task yet (a deployment starting up).
        logger.warning("jobs service refused the job", extra={"task": task, "detail": error.details()})
        message = f"no worker serves {task} right now; retry in a moment with the same batch_id"
    else:
        logger.error(
            "jobs service refused the job", extra={"task": task, "code": code.name, "detail": error.details()}
        )
        message = "the jobs service refused the batch's job; retry later with the same batch_id"
    return UnavailableError(message, reason="JOBS_UNAVAILABLE", retry_after_seconds=RETRY_AFTER_SECONDS)
