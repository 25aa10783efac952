"""The dashboard's Jobs RPCs over real gRPC against real Redis and real workers: remove, promote,
duplicate, bulk actions, search, metrics history, logs and the job detail."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf import struct_pb2
from redis.asyncio import Redis

from services.jobs.server import build
from services.jobs.settings import JobsSettings
from services.runtime.redis_mux import RedisMux
from services.runtime.server import ServiceContext, start_server
from switchboard.jobs.v1 import jobs_pb2, jobs_pb2_grpc
from tests.integration.conftest import Workers
from tests.polling import eventually

BULK_LIMIT = 30


@pytest.fixture
async def api(
    redis_client: Redis, redis_mux: RedisMux, key_prefix: str
) -> AsyncIterator[jobs_pb2_grpc.JobsServiceStub]:
    settings = JobsSettings(jobs_key_prefix=key_prefix, bulk_max_jobs_per_call=BULK_LIMIT)
    context = ServiceContext(redis=redis_client, redis_mux=redis_mux, exit_stack=contextlib.AsyncExitStack())
    async with context.exit_stack:
        running = await start_server(await build(settings, context), redis=redis_client)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            yield jobs_pb2_grpc.JobsServiceStub(channel)
        await running.server.stop(0)


def _payload(**values: str | int | bool) -> struct_pb2.Struct:
    payload = struct_pb2.Struct()
    payload.update(values)
    return payload


async def _submit(
    api: jobs_pb2_grpc.JobsServiceStub,
    queue: str = "analytics",
    task: str = "diagnostics.echo",
    **options: object,
) -> jobs_pb2.Job:
    payload = options.pop("payload", struct_pb2.Struct())
    request = jobs_pb2.SubmitJobRequest(queue=queue, task=task, payload=payload, **options)  # type: ignore[arg-type]
    job: jobs_pb2.Job = await api.SubmitJob(request)
    return job


async def _error(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call  # type: ignore[misc]
    return raised.value


async def _failed_jobs(api: jobs_pb2_grpc.JobsServiceStub, queue: str, words: str) -> int:
    found = await api.SearchJobs(
        jobs_pb2.SearchJobsRequest(
            filter=jobs_pb2.JobFilter(queue=queue, states=[jobs_pb2.JOB_STATE_FAILED], payload_text=words)
        )
    )
    return int(found.total)


async def test_remove_promote_and_duplicate(api: jobs_pb2_grpc.JobsServiceStub) -> None:
    delayed = await _submit(api, payload=_payload(order="A-17"), delay_ms=3_600_000, priority=3)
    copy = await api.DuplicateJob(jobs_pb2.DuplicateJobRequest(id=delayed.id))
    assert copy.id != delayed.id
    assert (copy.queue, copy.task, copy.priority) == (delayed.queue, delayed.task, 3)
    assert dict(copy.payload) == {"order": "A-17"}
    assert copy.state == jobs_pb2.JOB_STATE_WAITING, "a duplicate runs now, not after the original's delay"
    promoted = await api.PromoteJob(jobs_pb2.PromoteJobRequest(id=delayed.id))
    assert promoted.state == jobs_pb2.JOB_STATE_WAITING
    refused = await _error(api.PromoteJob(jobs_pb2.PromoteJobRequest(id=delayed.id)))
    assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "only a DELAYED job" in (refused.details() or "")
    removed = await api.RemoveJob(jobs_pb2.RemoveJobRequest(id=delayed.id))
    assert removed.state == jobs_pb2.JOB_STATE_WAITING
    gone = await _error(api.GetJobStatus(jobs_pb2.GetJobStatusRequest(id=delayed.id)))
    assert gone.code() == grpc.StatusCode.NOT_FOUND
    again = await _error(api.RemoveJob(jobs_pb2.RemoveJobRequest(id=delayed.id)))
    assert again.code() == grpc.StatusCode.NOT_FOUND
    bad = await _error(api.RemoveJob(jobs_pb2.RemoveJobRequest(id="")))
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_search_across_queues_with_total_and_pages(api: jobs_pb2_grpc.JobsServiceStub) -> None:
    for n in range(7):
        await _submit(api, queue=("analytics", "bigquery")[n % 2], payload=_payload(customer="Initech", n=n))
    await _submit(api, payload=_payload(customer="Hooli"))
    first = await api.SearchJobs(
        jobs_pb2.SearchJobsRequest(filter=jobs_pb2.JobFilter(payload_text="initech"), page_size=5)
    )
    assert first.total == 7 and not first.total_is_lower_bound
    assert len(first.jobs) == 5 and first.next_page_token
    rest = await api.SearchJobs(
        jobs_pb2.SearchJobsRequest(
            filter=jobs_pb2.JobFilter(payload_text="initech"), page_size=5, page_token=first.next_page_token
        )
    )
    assert len(rest.jobs) == 2 and not rest.next_page_token
    numbers = [int(job.payload["n"]) for job in [*first.jobs, *rest.jobs]]
    assert numbers == [6, 5, 4, 3, 2, 1, 0], "newest first, across both queues"
    one = await api.SearchJobs(jobs_pb2.SearchJobsRequest(filter=jobs_pb2.JobFilter(job_id=first.jobs[0].id)))
    assert [job.id for job in one.jobs] == [first.jobs[0].id]
    by_task = await api.SearchJobs(
        jobs_pb2.SearchJobsRequest(filter=jobs_pb2.JobFilter(task="diagnostics.echo", queue="bigquery"))
    )
    assert by_task.total == 3
    bad = await _error(
        api.SearchJobs(jobs_pb2.SearchJobsRequest(filter=jobs_pb2.JobFilter(payload_text="!!")))
    )
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "whole words" in (bad.details() or "")


async def test_bulk_retry_by_filter_dry_run_chunks_and_remaining(
    api: jobs_pb2_grpc.JobsServiceStub, workers: Workers
) -> None:
    workers.start("w", queues=("analytics",))
    total = BULK_LIMIT + 5
    for _ in range(total):
        await _submit(api, queue="analytics", task="diagnostics.fail",
                      payload=_payload(retryable=False, message="nightly batch"))  # fmt: skip
    await eventually(
        lambda: _failed_jobs(api, "analytics", "nightly"), lambda n: n == total, timeout=60, what="all failed"
    )
    workers.stop_all()
    retry_failed = jobs_pb2.JobFilter(queue="analytics", states=[jobs_pb2.JOB_STATE_FAILED])
    dry = await api.BulkJobAction(
        jobs_pb2.BulkJobActionRequest(action=jobs_pb2.BULK_ACTION_RETRY, filter=retry_failed, dry_run=True)
    )
    assert (dry.affected, dry.more_remain, dry.dry_run) == (BULK_LIMIT, True, True)
    assert await _failed_jobs(api, "analytics", "nightly") == total, "a dry run changes nothing"
    done = await api.BulkJobAction(
        jobs_pb2.BulkJobActionRequest(action=jobs_pb2.BULK_ACTION_RETRY, filter=retry_failed)
    )
    assert (done.affected, done.more_remain) == (BULK_LIMIT, True)
    assert await _failed_jobs(api, "analytics", "nightly") == 5
    rest = await api.BulkJobAction(
        jobs_pb2.BulkJobActionRequest(action=jobs_pb2.BULK_ACTION_RETRY, filter=retry_failed)
    )
    assert (rest.affected, rest.more_remain) == (5, False)
    queues = {queue.name: queue for queue in (await api.ListQueues(jobs_pb2.ListQueuesRequest())).queues}
    assert queues["analytics"].counts.waiting == total


async def test_bulk_by_ids_reports_each_skipped_job(api: jobs_pb2_grpc.JobsServiceStub) -> None:
    waiting = await _submit(api)
    delayed = await _submit(api, delay_ms=3_600_000)
    request = jobs_pb2.BulkJobActionRequest(
        action=jobs_pb2.BULK_ACTION_PROMOTE, ids=[waiting.id, delayed.id, "no-such-job"]
    )
    dry = await api.BulkJobAction(jobs_pb2.BulkJobActionRequest(
        action=request.action, ids=request.ids, dry_run=True))  # fmt: skip
    assert (dry.affected, dry.skipped) == (1, 2)
    done = await api.BulkJobAction(request)
    assert (done.affected, done.skipped) == (1, 2)
    assert {(f.id, f.reason) for f in done.failures} == {
        (waiting.id, "JOB_NOT_DELAYED"),
        ("no-such-job", "JOB_NOT_FOUND"),
    }
    status = await api.GetJobStatus(jobs_pb2.GetJobStatusRequest(id=delayed.id))
    assert status.state == jobs_pb2.JOB_STATE_WAITING
    removed = await api.BulkJobAction(
        jobs_pb2.BulkJobActionRequest(action=jobs_pb2.BULK_ACTION_REMOVE, ids=[waiting.id, delayed.id])
    )
    assert removed.affected == 2
    none = await _error(api.BulkJobAction(jobs_pb2.BulkJobActionRequest(action=jobs_pb2.BULK_ACTION_REMOVE)))
    assert none.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_detail_logs_and_metrics_of_a_failing_job(
    api: jobs_pb2_grpc.JobsServiceStub, workers: Workers, redis_client: Redis, key_prefix: str
) -> None:
    workers.start("w", queues=("bigquery",))
    job = await _submit(
        api, queue="bigquery", task="diagnostics.fail", payload=_payload(message="disk full"), max_attempts=2
    )
    failed = await eventually(
        lambda: api.GetJobStatus(jobs_pb2.GetJobStatusRequest(id=job.id)),
        lambda status: status.state == jobs_pb2.JOB_STATE_FAILED,
        timeout=60,
        what="the job failed twice",
    )
    assert [error.attempt for error in failed.attempt_errors] == [1, 2]
    assert all(error.worker and error.traceback for error in failed.attempt_errors)
    assert failed.last_worker == failed.attempt_errors[-1].worker
    states = [transition.state for transition in failed.transitions]
    assert states[0] == jobs_pb2.JOB_STATE_WAITING and states[-1] == jobs_pb2.JOB_STATE_FAILED
    assert states.count(jobs_pb2.JOB_STATE_ACTIVE) == 2
    logs = await api.GetJobLogs(jobs_pb2.GetJobLogsRequest(id=job.id, page_size=1))
    assert [(line.attempt, line.level) for line in logs.lines] == [(1, jobs_pb2.LOG_LEVEL_WARNING)]
    assert "disk full" in logs.lines[0].message
    second = await api.GetJobLogs(jobs_pb2.GetJobLogsRequest(id=job.id, page_token=logs.next_page_token))
    assert [line.attempt for line in second.lines] == [2] and not second.next_page_token
    found = await api.SearchJobs(
        jobs_pb2.SearchJobsRequest(filter=jobs_pb2.JobFilter(error_text="DISK full"))
    )
    assert [found_job.id for found_job in found.jobs] == [job.id]
    metrics = await api.GetQueueMetrics(jobs_pb2.GetQueueMetricsRequest(name="bigquery"))
    assert 60 <= len(metrics.minutes) <= 61, "the last hour by default, every minute"
    assert sum(minute.failed for minute in metrics.minutes) == 2
    assert sum(minute.started for minute in metrics.minutes) == 2
    assert any(minute.run_p95_ms > 0 for minute in metrics.minutes)
    too_long = await _error(
        api.GetQueueMetrics(
            jobs_pb2.GetQueueMetricsRequest(
                name="bigquery", start_time=metrics.minutes[0].time,
                end_time={"seconds": metrics.minutes[0].time.seconds + 25 * 3600},  # type: ignore[arg-type]
            )
        )
    )  # fmt: skip
    assert too_long.code() == grpc.StatusCode.INVALID_ARGUMENT
    last = metrics.minutes[-1].time.seconds
    day = await api.GetQueueMetrics(
        jobs_pb2.GetQueueMetricsRequest(
            name="bigquery", start_time={"seconds": last + 60 - 24 * 3600}, end_time={"seconds": last + 60},  # type: ignore[arg-type]
        )
    )  # fmt: skip
    assert 1440 <= len(day.minutes) <= 1441, "the dashboard's 24 h chart, a minute a point"
    assert sum(minute.failed for minute in day.minutes) == 2
    # The history keeps itself bounded: each minute's hash expires 26 h after it was written.
    minute_keys = await redis_client.keys(f"{key_prefix}:{{bigquery}}:m:*")
    assert minute_keys
    for key in minute_keys:
        assert 25 * 3600_000 < await redis_client.pttl(key) <= 26 * 3600_000, key
