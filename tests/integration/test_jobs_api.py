"""The Jobs API over real gRPC: submit, read, list, cancel, retry, queues, and the errors users can cause."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf import struct_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from redis.asyncio import Redis

from services.jobs.server import build
from services.jobs.settings import JobsSettings
from services.runtime.redis_mux import RedisMux
from services.runtime.server import ServiceContext, start_server
from switchboard.jobs.v1 import jobs_pb2, jobs_pb2_grpc
from tests.integration.conftest import Workers
from tests.polling import eventually


@pytest.fixture
async def api(
    redis_client: Redis, redis_mux: RedisMux, key_prefix: str
) -> AsyncIterator[jobs_pb2_grpc.JobsServiceStub]:
    settings = JobsSettings(jobs_key_prefix=key_prefix, max_payload_bytes=2048)
    context = ServiceContext(redis=redis_client, redis_mux=redis_mux, exit_stack=contextlib.AsyncExitStack())
    async with context.exit_stack:
        running = await start_server(await build(settings, context), redis=redis_client)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            yield jobs_pb2_grpc.JobsServiceStub(channel)
        await running.server.stop(0)


def _payload(**values: str | int) -> struct_pb2.Struct:
    payload = struct_pb2.Struct()
    payload.update(values)
    return payload


async def _error(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call  # type: ignore[misc]
    return raised.value


def _violation(error: grpc.aio.AioRpcError) -> error_details_pb2.BadRequest.FieldViolation:
    status = rpc_status.from_call(error)
    assert status is not None
    bad_request = error_details_pb2.BadRequest()
    assert any(detail.Unpack(bad_request) for detail in status.details)
    return bad_request.field_violations[0]


async def test_echo_job_end_to_end(api: jobs_pb2_grpc.JobsServiceStub, workers: Workers) -> None:
    workers.start("a")
    job = await api.SubmitJob(
        jobs_pb2.SubmitJobRequest(queue="analytics", task="diagnostics.echo", payload=_payload(x=1, s="a"))
    )
    assert job.id
    assert job.queue == "analytics"
    assert job.created_at.seconds > 0
    done = await eventually(
        lambda: api.GetJobResult(jobs_pb2.GetJobResultRequest(id=job.id)),
        lambda result: result.ready,
        timeout=15,
        what="echo completed",
    )
    assert done.state == jobs_pb2.JOB_STATE_COMPLETED
    assert dict(done.result.struct_value) == {"x": 1, "s": "a"}
    status = await api.GetJobStatus(jobs_pb2.GetJobStatusRequest(id=job.id))
    assert status.attempts_made == 1
    assert status.finished_at.ToMilliseconds() >= status.started_at.ToMilliseconds()


async def test_result_of_an_unfinished_job_is_not_ready(api: jobs_pb2_grpc.JobsServiceStub) -> None:
    job = await api.SubmitJob(jobs_pb2.SubmitJobRequest(queue="bigquery", task="diagnostics.echo"))
    result = await api.GetJobResult(jobs_pb2.GetJobResultRequest(id=job.id))
    assert (result.ready, result.state, result.HasField("result")) == (
        False,
        jobs_pb2.JOB_STATE_WAITING,
        False,
    )


async def test_submit_with_a_known_job_id_returns_the_same_job(api: jobs_pb2_grpc.JobsServiceStub) -> None:
    first = await api.SubmitJob(
        jobs_pb2.SubmitJobRequest(queue="analytics", task="diagnostics.echo", job_id="order-42", priority=3)
    )
    again = await api.SubmitJob(
        jobs_pb2.SubmitJobRequest(queue="analytics", task="diagnostics.echo", job_id="order-42")
    )
    assert again.id == first.id == "order-42"
    assert again.created_at == first.created_at
    listed = await api.ListJobs(jobs_pb2.ListJobsRequest(queue="analytics"))
    assert [job.id for job in listed.jobs] == ["order-42"]
    clash = await _error(
        api.SubmitJob(jobs_pb2.SubmitJobRequest(queue="bigquery", task="diagnostics.echo", job_id="order-42"))
    )
    assert clash.code() is grpc.StatusCode.ABORTED


async def test_errors_a_user_can_cause_say_what_to_do(api: jobs_pb2_grpc.JobsServiceStub) -> None:
    unknown_queue = await _error(api.SubmitJob(jobs_pb2.SubmitJobRequest(queue="email", task="x")))
    assert unknown_queue.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "use one of: analytics, bigquery, ratelimit" in (unknown_queue.details() or "")
    assert _violation(unknown_queue).field == "queue"

    unknown_task = await _error(api.SubmitJob(jobs_pb2.SubmitJobRequest(queue="analytics", task="send")))
    assert "diagnostics.echo" in (unknown_task.details() or ""), "it lists the tasks the queue has"
    assert _violation(unknown_task).field == "task"

    too_big = await _error(
        api.SubmitJob(
            jobs_pb2.SubmitJobRequest(
                queue="analytics", task="diagnostics.echo", payload=_payload(blob="x" * 4096)
            )
        )
    )
    assert too_big.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert _violation(too_big).field == "payload"
    assert "over the limit of 2048" in (too_big.details() or "")

    missing = await _error(api.GetJobStatus(jobs_pb2.GetJobStatusRequest(id="no-such-job")))
    assert missing.code() is grpc.StatusCode.NOT_FOUND

    bad_delay = await _error(
        api.SubmitJob(jobs_pb2.SubmitJobRequest(queue="analytics", task="diagnostics.echo", delay_ms=-5))
    )
    assert _violation(bad_delay).field == "delay_ms"

    bad_token = await _error(api.ListJobs(jobs_pb2.ListJobsRequest(page_token="garbage!")))
    assert _violation(bad_token).field == "page_token"


async def test_cancel_and_retry_through_the_api(api: jobs_pb2_grpc.JobsServiceStub) -> None:
    job = await api.SubmitJob(
        jobs_pb2.SubmitJobRequest(queue="ratelimit", task="diagnostics.echo", delay_ms=60_000)
    )
    assert job.state == jobs_pb2.JOB_STATE_DELAYED
    cancelled = await api.CancelJob(jobs_pb2.CancelJobRequest(id=job.id))
    assert cancelled.state == jobs_pb2.JOB_STATE_CANCELLED
    again = await _error(api.CancelJob(jobs_pb2.CancelJobRequest(id=job.id)))
    assert again.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "already CANCELLED" in (again.details() or ""), "the message says the current state"
    retried = await api.RetryJob(jobs_pb2.RetryJobRequest(id=job.id))
    assert (retried.state, retried.attempts_made) == (jobs_pb2.JOB_STATE_WAITING, 0)
    not_retryable = await _error(api.RetryJob(jobs_pb2.RetryJobRequest(id=job.id)))
    assert not_retryable.code() is grpc.StatusCode.FAILED_PRECONDITION


async def test_queues_pause_resume_count_and_clean(
    api: jobs_pb2_grpc.JobsServiceStub, workers: Workers
) -> None:
    paused = await api.PauseQueue(jobs_pb2.PauseQueueRequest(name="analytics"))
    assert paused.paused
    ids = [
        (await api.SubmitJob(jobs_pb2.SubmitJobRequest(queue="analytics", task="diagnostics.echo"))).id
        for _ in range(3)
    ]
    workers.start("a")
    queues = {queue.name: queue for queue in (await api.ListQueues(jobs_pb2.ListQueuesRequest())).queues}
    assert set(queues) == {"analytics", "bigquery", "ratelimit"}
    assert queues["analytics"].paused
    assert queues["analytics"].counts.waiting == 3
    assert queues["analytics"].policy.max_attempts == 5
    assert queues["bigquery"].policy.lease_timeout.seconds == 60

    resumed = await api.ResumeQueue(jobs_pb2.ResumeQueueRequest(name="analytics"))
    assert not resumed.paused
    await eventually(
        lambda: api.ListQueues(jobs_pb2.ListQueuesRequest()),
        lambda response: response.queues[0].counts.completed == 3,
        timeout=15,
        what="the three jobs completed after resume",
    )
    completed = await api.ListJobs(
        jobs_pb2.ListJobsRequest(queue="analytics", state=jobs_pb2.JOB_STATE_COMPLETED, page_size=2)
    )
    assert len(completed.jobs) == 2
    assert completed.next_page_token
    rest = await api.ListJobs(
        jobs_pb2.ListJobsRequest(
            queue="analytics",
            state=jobs_pb2.JOB_STATE_COMPLETED,
            page_size=2,
            page_token=completed.next_page_token,
        )
    )
    assert sorted(job.id for job in [*completed.jobs, *rest.jobs]) == sorted(ids)
    cleaned = await api.CleanQueue(
        jobs_pb2.CleanQueueRequest(name="analytics", state=jobs_pb2.JOB_STATE_COMPLETED)
    )
    assert cleaned.removed == 3
    no_state = await _error(api.CleanQueue(jobs_pb2.CleanQueueRequest(name="analytics")))
    assert _violation(no_state).field == "state"
