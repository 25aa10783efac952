"""The dashboard's calls to the services, made as the operator: their credentials go with every call,
so each service checks them itself (and audits its admin RPCs under their name).

Only gRPC: the dashboard never reads a Redis key of a service. A failed call becomes a `BackendError`
carrying the HTTP status the page answers with and the service's own message.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from services.admin.dashboard.access import Operator
from switchboard.jobs.v1 import jobs_pb2, jobs_pb2_grpc
from switchboard.ratelimit.v1 import ratelimit_pb2, ratelimit_pb2_grpc

T = TypeVar("T")

_HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 503,
}


class BackendError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Backend:
    """Stubs of the jobs and rate-limit services on channels that carry no identity of their own."""

    def __init__(self, jobs: grpc.aio.Channel, ratelimit: grpc.aio.Channel, *, timeout: float) -> None:
        self.jobs = jobs_pb2_grpc.JobsServiceStub(jobs)
        self.limits = ratelimit_pb2_grpc.RateLimitServiceStub(ratelimit)
        self._timeout = timeout

    async def call(self, operator: Operator, method: Callable[..., Awaitable[T]], request: Any) -> T:
        """`method(request)` as `operator`; a failure → BackendError with its HTTP status."""
        try:
            return await method(request, metadata=operator.metadata, timeout=self._timeout)
        except grpc.aio.AioRpcError as error:
            raise BackendError(
                _HTTP_STATUS.get(error.code(), 502), str(error.details() or "")[:500]
            ) from None

    async def queues(self, operator: Operator) -> list[jobs_pb2.Queue]:
        response = await self.call(operator, self.jobs.ListQueues, jobs_pb2.ListQueuesRequest())
        return list(response.queues)

    async def workers(self, operator: Operator) -> list[jobs_pb2.Worker]:
        response = await self.call(operator, self.jobs.ListWorkers, jobs_pb2.ListWorkersRequest())
        return list(response.workers)

    async def jobs_page(
        self,
        operator: Operator,
        *,
        queue: str = "",
        state: jobs_pb2.JobState.ValueType = jobs_pb2.JOB_STATE_UNSPECIFIED,
        search: str = "",
        page_size: int,
        page_token: str = "",
    ) -> tuple[list[jobs_pb2.Job], str]:
        request = jobs_pb2.ListJobsRequest(
            queue=queue, state=state, search=search, page_size=page_size, page_token=page_token
        )
        response = await self.call(operator, self.jobs.ListJobs, request)
        return list(response.jobs), response.next_page_token

    async def job(self, operator: Operator, job_id: str) -> jobs_pb2.Job:
        return await self.call(operator, self.jobs.GetJobStatus, jobs_pb2.GetJobStatusRequest(id=job_id))

    async def result(self, operator: Operator, job_id: str) -> jobs_pb2.GetJobResultResponse:
        return await self.call(operator, self.jobs.GetJobResult, jobs_pb2.GetJobResultRequest(id=job_id))

    async def rules(self, operator: Operator) -> list[ratelimit_pb2.Rule]:
        response = await self.call(operator, self.limits.ListRules, ratelimit_pb2.ListRulesRequest())
        return list(response.rules)

    async def usage(self, operator: Operator, rule: str, key: str) -> ratelimit_pb2.GetUsageResponse:
        return await self.call(
            operator, self.limits.GetUsage, ratelimit_pb2.GetUsageRequest(rule=rule, key=key)
        )

    async def logs(self, operator: Operator, job_id: str) -> jobs_pb2.GetJobLogsResponse:
        """The job's log lines, the first 1,000 (the jobs service keeps a capped number per job)."""
        request = jobs_pb2.GetJobLogsRequest(id=job_id, page_size=1000)
        return await self.call(operator, self.jobs.GetJobLogs, request)

    async def metrics(
        self, operator: Operator, queue: str, *, minutes: int
    ) -> list[jobs_pb2.QueueMetricsMinute]:
        """The queue's last `minutes` of per-minute history, oldest first."""
        request = jobs_pb2.GetQueueMetricsRequest(name=queue)
        end = int(time.time())
        request.end_time.FromSeconds(end)
        request.start_time.FromSeconds(end - minutes * 60)
        response = await self.call(operator, self.jobs.GetQueueMetrics, request)
        return list(response.minutes)

    async def search(
        self, operator: Operator, where: jobs_pb2.JobFilter, *, page_size: int, page_token: str = ""
    ) -> jobs_pb2.SearchJobsResponse:
        request = jobs_pb2.SearchJobsRequest(filter=where, page_size=page_size, page_token=page_token)
        return await self.call(operator, self.jobs.SearchJobs, request)

    async def bulk(
        self, operator: Operator, request: jobs_pb2.BulkJobActionRequest
    ) -> jobs_pb2.BulkJobActionResponse:
        return await self.call(operator, self.jobs.BulkJobAction, request)
