"""Jobs RPCs: proto ⇄ domain, nothing more."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import json_format, struct_pb2, timestamp_pb2

from services.jobs.manager import BulkAction, BulkOutcome, JobManager, QueueInfo, SearchText, SubmitRequest
from services.jobs.model import AttemptError, Job, JobState, LogLine
from services.jobs.queue_history import MinuteMetrics
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
_ACTION_FROM_PROTO = {
    jobs_pb2.BULK_ACTION_RETRY: BulkAction.RETRY,
    jobs_pb2.BULK_ACTION_CANCEL: BulkAction.CANCEL,
    jobs_pb2.BULK_ACTION_REMOVE: BulkAction.REMOVE,
    jobs_pb2.BULK_ACTION_PROMOTE: BulkAction.PROMOTE,
}
_LEVEL_TO_PROTO = {
    "debug": jobs_pb2.LOG_LEVEL_DEBUG,
    "info": jobs_pb2.LOG_LEVEL_INFO,
    "warning": jobs_pb2.LOG_LEVEL_WARNING,
    "error": jobs_pb2.LOG_LEVEL_ERROR,
}


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

    async def RemoveJob(
        self, request: jobs_pb2.RemoveJobRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.RemoveJobResponse:
        state = await self._jobs.remove(request.id)
        return jobs_pb2.RemoveJobResponse(id=request.id, state=_STATE_TO_PROTO[state])

    async def PromoteJob(
        self, request: jobs_pb2.PromoteJobRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.Job:
        return job_to_proto(await self._jobs.promote(request.id))

    async def DuplicateJob(
        self, request: jobs_pb2.DuplicateJobRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.Job:
        return job_to_proto(await self._jobs.duplicate(request.id))

    async def BulkJobAction(
        self, request: jobs_pb2.BulkJobActionRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.BulkJobActionResponse:
        outcome = await self._jobs.bulk(
            _ACTION_FROM_PROTO.get(request.action),
            ids=list(request.ids),
            text=_search_text(request.filter) if request.HasField("filter") else None,
            dry_run=request.dry_run,
        )
        return _bulk_to_proto(outcome)

    async def SearchJobs(
        self, request: jobs_pb2.SearchJobsRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.SearchJobsResponse:
        jobs, token, total, exact = await self._jobs.search(
            _search_text(request.filter), page_size=request.page_size, page_token=request.page_token
        )
        return jobs_pb2.SearchJobsResponse(
            jobs=[job_to_proto(job) for job in jobs],
            next_page_token=token,
            total=total,
            total_is_lower_bound=not exact,
        )

    async def GetQueueMetrics(
        self, request: jobs_pb2.GetQueueMetricsRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.GetQueueMetricsResponse:
        minutes = await self._jobs.queue_metrics(
            request.name,
            request.start_time.ToMilliseconds() if request.HasField("start_time") else None,
            request.end_time.ToMilliseconds() if request.HasField("end_time") else None,
        )
        return jobs_pb2.GetQueueMetricsResponse(
            name=request.name, minutes=[_minute_to_proto(minute) for minute in minutes]
        )

    async def GetJobLogs(
        self, request: jobs_pb2.GetJobLogsRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.GetJobLogsResponse:
        lines, token, dropped = await self._jobs.job_logs(
            request.id, page_size=request.page_size, page_token=request.page_token
        )
        return jobs_pb2.GetJobLogsResponse(
            lines=[_log_line_to_proto(line) for line in lines], next_page_token=token, dropped=dropped
        )


def _search_text(message: jobs_pb2.JobFilter) -> SearchText:
    return SearchText(
        queue=message.queue,
        states=frozenset(_STATE_FROM_PROTO[state] for state in message.states if state in _STATE_FROM_PROTO),
        job_id=message.job_id,
        task=message.task,
        payload_text=message.payload_text,
        error_text=message.error_text,
        created_after_ms=message.created_after.ToMilliseconds()
        if message.HasField("created_after")
        else None,
        created_before_ms=(
            message.created_before.ToMilliseconds() if message.HasField("created_before") else None
        ),
    )


def _bulk_to_proto(outcome: BulkOutcome) -> jobs_pb2.BulkJobActionResponse:
    return jobs_pb2.BulkJobActionResponse(
        affected=outcome.affected,
        skipped=outcome.skipped,
        failures=[
            jobs_pb2.BulkJobFailure(id=failure.id, reason=failure.reason, message=failure.message)
            for failure in outcome.failures
        ],
        more_remain=outcome.more_remain,
        dry_run=outcome.dry_run,
        affected_is_lower_bound=outcome.affected_is_lower_bound,
    )


def _minute_to_proto(minute: MinuteMetrics) -> jobs_pb2.QueueMetricsMinute:
    return jobs_pb2.QueueMetricsMinute(
        time=_timestamp(minute.minute_ms),
        completed=minute.completed,
        failed=minute.failed,
        started=minute.started,
        wait_p50_ms=minute.wait_p50_ms,
        wait_p95_ms=minute.wait_p95_ms,
        run_p50_ms=minute.run_p50_ms,
        run_p95_ms=minute.run_p95_ms,
    )


def _log_line_to_proto(line: LogLine) -> jobs_pb2.JobLogLine:
    return jobs_pb2.JobLogLine(
        time=_timestamp(line.at_ms),
        level=_LEVEL_TO_PROTO.get(line.level, jobs_pb2.LOG_LEVEL_UNSPECIFIED),
        message=line.message,
        attempt=line.attempt,
    )


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
        transitions=[
            jobs_pb2.JobTransition(
                state=_STATE_TO_PROTO[transition.state],
                time=_timestamp(transition.at_ms),
                worker=transition.worker,
            )
            for transition in job.transitions
        ],
        last_worker=job.last_worker,
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
        worker=error.worker,
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
        active_jobs=worker.active_jobs,
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
