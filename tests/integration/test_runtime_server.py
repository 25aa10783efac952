"""The runtime's gRPC server, for real on port 0: error mapping, request ids, health and reflection.

The servicer here is a stand-in written for these tests (the real Jobs RPCs come with their issue): it
raises the domain errors the runtime must translate.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from grpc_status import rpc_status

from devstack.redis import RedisServer
from services.runtime import errors
from services.runtime.channels import open_channel
from services.runtime.redis_pool import create_redis
from services.runtime.request_context import bind_request_id, current_request_id, reset_request_id
from services.runtime.server import LIVENESS_SERVICE, RunningServer, ServiceBinding, start_server
from services.runtime.settings import RedisSettings
from switchboard.jobs.v1 import jobs_pb2, jobs_pb2_grpc
from tests.integration.conftest import BlackHole
from tests.polling import eventually

JOBS = jobs_pb2.DESCRIPTOR.services_by_name["JobsService"]


class _ScriptedJobs(jobs_pb2_grpc.JobsServiceServicer):
    async def GetJobStatus(self, request: jobs_pb2.GetJobStatusRequest, context: object) -> jobs_pb2.Job:
        raise errors.NotFoundError(
            f"no job {request.id}; list jobs to find its id",
            reason="JOB_NOT_FOUND",
            metadata={"id": request.id},
        )

    async def SubmitJob(self, request: jobs_pb2.SubmitJobRequest, context: object) -> jobs_pb2.Job:
        raise errors.InvalidArgumentError.for_field(
            "queue", "unknown queue; use analytics, bigquery or ratelimit"
        )

    async def CancelJob(self, request: jobs_pb2.CancelJobRequest, context: object) -> jobs_pb2.Job:
        raise RuntimeError("secret internal detail")

    async def ListJobs(self, request: jobs_pb2.ListJobsRequest, context: object) -> jobs_pb2.ListJobsResponse:
        # Echoes the request id the call scope bound for this call.
        return jobs_pb2.ListJobsResponse(next_page_token=current_request_id() or "")


def list_services(address: str) -> set[str]:
    """The services a server lists through reflection (the client is blocking: call it off the loop)."""
    with grpc.insecure_channel(address) as channel:
        return set(ProtoReflectionDescriptorDatabase(channel).get_services())


@pytest.fixture
async def server(redis_server: RedisServer) -> AsyncIterator[RunningServer]:
    redis = create_redis(RedisSettings(port=redis_server.port))
    running = await start_server(
        [
            ServiceBinding.of(
                JOBS,
                jobs_pb2_grpc.add_JobsServiceServicer_to_server,
                _ScriptedJobs(),  # type: ignore[abstract]  # the RPCs it leaves out answer UNIMPLEMENTED
            )
        ],
        redis=redis,
    )
    yield running
    await running.server.stop(0)
    await redis.aclose()


@pytest.fixture
async def jobs(server: RunningServer) -> AsyncIterator[jobs_pb2_grpc.JobsServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield jobs_pb2_grpc.JobsServiceStub(channel)


async def test_a_domain_error_becomes_its_status_with_details(jobs: jobs_pb2_grpc.JobsServiceStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await jobs.GetJobStatus(jobs_pb2.GetJobStatusRequest(id="j-404"))
    assert raised.value.code() is grpc.StatusCode.NOT_FOUND
    assert raised.value.details() == "no job j-404; list jobs to find its id"
    status = rpc_status.from_call(raised.value)
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert (info.reason, dict(info.metadata)) == ("JOB_NOT_FOUND", {"id": "j-404"})


async def test_invalid_argument_names_the_field(jobs: jobs_pb2_grpc.JobsServiceStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await jobs.SubmitJob(jobs_pb2.SubmitJobRequest(queue="nope"))
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(raised.value)
    assert status is not None
    bad_request = error_details_pb2.BadRequest()
    assert any(detail.Unpack(bad_request) for detail in status.details)
    assert bad_request.field_violations[0].field == "queue"


async def test_an_unexpected_error_is_internal_without_leaking_its_text(
    jobs: jobs_pb2_grpc.JobsServiceStub, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await jobs.CancelJob(jobs_pb2.CancelJobRequest(id="j1"), metadata=(("x-request-id", "req-7"),))
    assert raised.value.code() is grpc.StatusCode.INTERNAL
    assert "secret" not in (raised.value.details() or "")
    assert "req-7" in (raised.value.details() or ""), "the caller gets the id to quote"
    logged = [r for r in caplog.records if r.getMessage() == "unexpected error"]
    assert len(logged) == 1, "logged once"
    assert logged[0].exc_info is not None
    assert logged[0].__dict__["method"] == "/switchboard.jobs.v1.JobsService/CancelJob"


async def test_unimplemented_rpcs_answer_unimplemented(jobs: jobs_pb2_grpc.JobsServiceStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await jobs.ListQueues(jobs_pb2.ListQueuesRequest())
    assert raised.value.code() is grpc.StatusCode.UNIMPLEMENTED


async def test_the_callers_request_id_is_bound_for_the_call(jobs: jobs_pb2_grpc.JobsServiceStub) -> None:
    response = await jobs.ListJobs(jobs_pb2.ListJobsRequest(), metadata=(("x-request-id", "req-abc"),))
    assert response.next_page_token == "req-abc"
    generated = await jobs.ListJobs(jobs_pb2.ListJobsRequest())
    assert len(generated.next_page_token) == 32, "a call without one gets a fresh id"


async def test_health_and_reflection_cover_the_services(server: RunningServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", JOBS.full_name):
            response = await health.Check(health_pb2.HealthCheckRequest(service=service))
            assert response.status == health_pb2.HealthCheckResponse.SERVING
    listed = await asyncio.to_thread(list_services, f"127.0.0.1:{server.port}")
    assert {JOBS.full_name, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= listed


async def test_sibling_channels_carry_the_request_id_and_a_default_deadline(server: RunningServer) -> None:
    channel = open_channel(f"127.0.0.1:{server.port}", default_timeout=5)
    token = bind_request_id("req-from-upstream")
    try:
        response = await jobs_pb2_grpc.JobsServiceStub(channel).ListJobs(jobs_pb2.ListJobsRequest())
    finally:
        reset_request_id(token)
        await channel.close()
    assert response.next_page_token == "req-from-upstream"


async def test_a_call_to_a_hanging_sibling_ends_at_the_default_deadline(black_hole: BlackHole) -> None:
    channel = open_channel(black_hole.address, default_timeout=0.3)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await jobs_pb2_grpc.JobsServiceStub(channel).ListJobs(jobs_pb2.ListJobsRequest())
    finally:
        await channel.close()
    assert raised.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED


async def test_liveness_stays_serving_while_redis_is_down(own_redis: RedisServer) -> None:
    """Kubernetes' liveness probe asks `liveness`: an outage of Redis makes the pod unready, never restarts
    it (readiness asks the overall health, which follows Redis)."""
    redis = create_redis(RedisSettings(port=own_redis.port, timeout_seconds=0.2, retries=0))
    running = await start_server(
        [
            ServiceBinding.of(
                JOBS,
                jobs_pb2_grpc.add_JobsServiceServicer_to_server,
                _ScriptedJobs(),  # type: ignore[abstract]  # the RPCs it leaves out answer UNIMPLEMENTED
            )
        ],
        redis=redis,
        health_interval_seconds=0.05,
        redis_timeout_seconds=0.2,
    )
    monitor = asyncio.create_task(running.health.run())
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)

            async def status(service: str) -> int:
                response = await health.Check(health_pb2.HealthCheckRequest(service=service))
                return int(response.status)

            assert await status(LIVENESS_SERVICE) == health_pb2.HealthCheckResponse.SERVING
            own_redis.stop()
            await eventually(
                lambda: status(""),
                lambda seen: seen == health_pb2.HealthCheckResponse.NOT_SERVING,
                timeout=10,
                what="overall health NOT_SERVING with Redis stopped",
            )
            assert await status(LIVENESS_SERVICE) == health_pb2.HealthCheckResponse.SERVING
    finally:
        monitor.cancel()
        await running.server.stop(0)
        await redis.aclose()
