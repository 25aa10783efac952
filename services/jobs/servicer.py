"""Jobs RPCs: proto ⇄ domain, nothing more."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import json_format, struct_pb2, timestamp_pb2

from services.jobs.manager import JobManager, QueueInfo, SubmitRequest
from services.jobs.model import AttemptError, Job, JobState
from services.jobs.registry import WorkerRecord
from services.queue_policy.wire import policy_to_proto
from switchboard.jobs.v1 import jobs_pb2, jobs_pb2_grpc

_STATE_TO_PROTO = {
    JobState.WAITING: jobs_pb2.JOB_STATE_WAITING,
    JobState.DELAYED: jobs_pb2.JOB_STATE_DELAYED,
    JobState.ACTIVE: jobs_pb2.JOB_STATE_ACTIVE,
    JobState.COMPLETED: jobs_pb2.JOB_STATE_COMPLETED,
    JobState.FAILED: jobs_pb2.JOB_STATE_FAILED,
    JobState.CANCELLED: jobs_pb2.JOB_STATE_CANCELLED,
    JobState.DEAD_LETTERED: jobs_pb2.JOB_STATE_DEAD_LETTERED,
}
_STATE_FROM_PROTO = {value: key for key, value in _STATE_TO_PROTO.items()}


class JobsServicer(jobs_pb2_grpc.JobsServiceServicer):
    def __init__(self, manager: JobManager) -> None:
        self._jobs = manager

    async def SubmitJob(
        self, request: jobs_pb2.SubmitJobRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.Job:
        job = await self._jobs.submit(
            SubmitRequest(
                queue=request.queue,
                task=request.task,
                payload=_plain(json_format.MessageToDict(request.payload)),
                job_id=request.job_id,
                delay_ms=request.delay_ms,
                priority=request.priority,
                max_attempts=request.max_attempts,
            )
        )
        return job_to_proto(job)

    async def GetJobStatus(
        self, request: jobs_pb2.GetJobStatusRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.Job:
        return job_to_proto(await self._jobs.get(request.id))

    async def GetJobResult(
        self, request: jobs_pb2.GetJobResultRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.GetJobResultResponse:
        job = await self._jobs.get(request.id)
        response = jobs_pb2.GetJobResultResponse(
            id=job.id, state=_STATE_TO_PROTO[job.state], ready=job.state is JobState.COMPLETED
        )
        if job.state is JobState.COMPLETED:
            response.result.CopyFrom(_value(job.result))
        elif job.state.finished and job.error is not None:
            response.error.CopyFrom(_error_to_proto(job.error))
        return response

    async def ListJobs(
        self, request: jobs_pb2.ListJobsRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.ListJobsResponse:
        jobs, token = await self._jobs.list_jobs(
            queue=request.queue,
            state=_STATE_FROM_PROTO.get(request.state),
            search=request.search,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return jobs_pb2.ListJobsResponse(jobs=[job_to_proto(job) for job in jobs], next_page_token=token)

    async def CancelJob(
        self, request: jobs_pb2.CancelJobRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.Job:
        return job_to_proto(await self._jobs.cancel(request.id))

    async def RetryJob(
        self, request: jobs_pb2.RetryJobRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.Job:
        return job_to_proto(await self._jobs.retry(request.id))

    async def ListQueues(
        self, request: jobs_pb2.ListQueuesRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.ListQueuesResponse:
        return jobs_pb2.ListQueuesResponse(queues=[_queue_to_proto(q) for q in await self._jobs.queues()])

    async def PauseQueue(
        self, request: jobs_pb2.PauseQueueRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.Queue:
        return _queue_to_proto(await self._jobs.pause(request.name, paused=True))

    async def ResumeQueue(
        self, request: jobs_pb2.ResumeQueueRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.Queue:
        return _queue_to_proto(await self._jobs.pause(request.name, paused=False))

    async def CleanQueue(
        self, request: jobs_pb2.CleanQueueRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.CleanQueueResponse:
        removed = await self._jobs.clean(
            request.name, _STATE_FROM_PROTO.get(request.state), request.older_than_seconds, request.limit
        )
        return jobs_pb2.CleanQueueResponse(removed=removed)

    async def ListWorkers(
        self, request: jobs_pb2.ListWorkersRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.ListWorkersResponse:
        workers = await self._jobs.list_workers(queue=request.queue)
        return jobs_pb2.ListWorkersResponse(workers=[_worker_to_proto(worker) for worker in workers])


def job_to_proto(job: Job) -> jobs_pb2.Job:
    message = jobs_pb2.Job(
        id=job.id,
        queue=job.queue,
        task=job.task,
        state=_STATE_TO_PROTO[job.state],
        attempts_made=job.attempts_made,
        max_attempts=job.max_attempts,
        priority=job.priority,
        cancel_requested=job.cancel_requested,
        deliveries=job.deliveries,
        worker=job.worker,
        version=job.version,
        attempt_errors=[_error_to_proto(error) for error in job.attempt_errors],
    )
    message.payload.update(job.payload)
    if job.progress is not None:
        message.progress.CopyFrom(_value(job.progress))
    if job.error is not None:
        message.error.CopyFrom(_error_to_proto(job.error))
    for field, ms in (
        ("created_at", job.created_at_ms),
        ("started_at", job.started_at_ms),
        ("finished_at", job.finished_at_ms),
        ("run_at", job.run_at_ms),
    ):
        if ms is not None:
            getattr(message, field).CopyFrom(_timestamp(ms))
    return message


def _error_to_proto(error: AttemptError) -> jobs_pb2.JobError:
    message = jobs_pb2.JobError(
        type=error.type,
        message=error.message,
        retryable=error.retryable,
        traceback=error.traceback,
        attempt=error.attempt,
    )
    if error.occurred_at_ms is not None:
        message.occurred_at.CopyFrom(_timestamp(error.occurred_at_ms))
    if error.started_at_ms is not None:
        message.started_at.CopyFrom(_timestamp(error.started_at_ms))
    return message


def _queue_to_proto(queue: QueueInfo) -> jobs_pb2.Queue:
    counts = {state.value: count for state, count in queue.counts.items()}
    return jobs_pb2.Queue(
        name=queue.name,
        paused=queue.paused,
        counts=jobs_pb2.QueueCounts(**counts),
        policy=policy_to_proto(queue.policy),
        workers=queue.workers,
    )


def _worker_to_proto(worker: WorkerRecord) -> jobs_pb2.Worker:
    return jobs_pb2.Worker(
        id=worker.id,
        host=worker.host,
        pid=worker.pid,
        queues=list(worker.queues),
        tasks=worker.task_names,
        capacity=worker.capacity,
        started_at=_timestamp(worker.started_at_ms),
        version=worker.version,
        last_heartbeat_at=_timestamp(worker.heartbeat_at_ms),
    )


def _timestamp(ms: int) -> timestamp_pb2.Timestamp:
    timestamp = timestamp_pb2.Timestamp()
    timestamp.FromMilliseconds(ms)
    return timestamp


def _value(data: Any) -> struct_pb2.Value:
    value = struct_pb2.Value()
    json_format.ParseDict(data, value)
    return value


def _plain(data: Any) -> Any:
    """Struct numbers arrive as floats: give whole numbers back their int type (`{"ms": 500}`)."""
    if isinstance(data, dict):
        return {key: _plain(value) for key, value in data.items()}
    if isinstance(data, list):
        return [_plain(value) for value in data]
    if isinstance(data, float) and data.is_integer() and abs(data) < 2**53:
        return int(data)
    return data
