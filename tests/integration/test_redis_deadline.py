"""The per-call Redis deadline (`REDIS_CALL_DEADLINE_SECONDS`): real service processes on a stalled Redis
answer a Redis-backed call UNAVAILABLE at the deadline configured, the connection test, which must report
the outage, is not cut by it, and a service whose calls wait on something slower opts out."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from devstack.redis import RedisServer
from devstack.services import ServiceProcess
from services.access.credentials import basic_header
from services.runtime.redis_pool import create_redis
from services.runtime.server import ServiceBinding, start_server
from services.runtime.settings import RedisSettings
from switchboard.admin.v1 import connection_pb2, connection_pb2_grpc
from switchboard.jobs.v1 import jobs_pb2, jobs_pb2_grpc
from tests.integration.conftest import BlackHole

JOBS = jobs_pb2.DESCRIPTOR.services_by_name["JobsService"]


ADMIN = ("admin", "a-long-test-password-0002")


def _service(name: str, redis: RedisServer, run_dir: Path, **env: str) -> ServiceProcess:
    service = ServiceProcess(
        name,
        run_dir=run_dir,
        env={"REDIS_PORT": str(redis.port), "REDIS_CALL_DEADLINE_SECONDS": "0.3", **env},
    )
    service.start()
    service.wait_ready()
    return service


@pytest.fixture
def stalled_redis(own_redis: RedisServer) -> Iterator[RedisServer]:
    """`own_redis`, to be paused by the test; always resumed before it is stopped."""
    yield own_redis
    with contextlib.suppress(RuntimeError):  # not paused, or already stopped
        own_redis.resume()


def test_a_redis_backed_call_answers_unavailable_at_the_configured_deadline(
    stalled_redis: RedisServer, tmp_path: Path
) -> None:
    jobs = _service("jobs", stalled_redis, tmp_path)
    try:
        with grpc.insecure_channel(jobs.address) as channel:
            api = jobs_pb2_grpc.JobsServiceStub(channel)
            request = jobs_pb2.GetJobStatusRequest(id="no-such-job")
            with pytest.raises(grpc.RpcError) as before:
                api.GetJobStatus(request, timeout=10)
            assert before.value.code() is grpc.StatusCode.NOT_FOUND

            stalled_redis.pause()
            started = time.monotonic()
            with pytest.raises(grpc.RpcError) as stalled:
                api.GetJobStatus(request, timeout=10)
            elapsed = time.monotonic() - started
            assert stalled.value.code() is grpc.StatusCode.UNAVAILABLE
            assert "deadline of 0.3 s" in (stalled.value.details() or "")
            assert 0.25 <= elapsed < 1.0, f"answered after {elapsed:.3f} s"

            stalled_redis.resume()
            with pytest.raises(grpc.RpcError) as after:
                api.GetJobStatus(request, timeout=10)
            assert after.value.code() is grpc.StatusCode.NOT_FOUND, "it recovers by itself"
    finally:
        jobs.stop()


def test_the_connection_test_is_not_cut_by_the_redis_deadline_and_reports_the_stall(
    stalled_redis: RedisServer, tmp_path: Path, black_hole: BlackHole
) -> None:
    # The siblings hang for the connection test's whole 1 s: longer than the 0.3 s Redis deadline.
    admin = _service(
        "admin",
        stalled_redis,
        tmp_path,
        JOBS_ADDRESS=black_hole.address,
        RATELIMIT_ADDRESS=black_hole.address,
        BIGQUERY_ADDRESS=black_hole.address,
        ANALYTICS_ADDRESS=black_hole.address,
        CONNECTION_TEST_TIMEOUT_SECONDS="1.0",
        SWITCHBOARD_ADMIN_USER=ADMIN[0],
        SWITCHBOARD_ADMIN_PASSWORD=ADMIN[1],
    )
    try:
        stalled_redis.pause()
        with grpc.insecure_channel(admin.address) as channel:
            # Signed in: the unauthenticated see only pass or fail, not why.
            report = connection_pb2_grpc.ConnectionServiceStub(channel).TestConnection(
                connection_pb2.TestConnectionRequest(),
                timeout=10,
                metadata=(("authorization", basic_header(*ADMIN)),),
            )
        checks = {check.name: check for check in report.checks}
        assert not report.ok
        assert checks["redis"].status == connection_pb2.CHECK_STATUS_FAILED
        assert "did not answer within 0.3 s" in checks["redis"].detail, checks["redis"]
        assert checks["jobs-service"].status == connection_pb2.CHECK_STATUS_FAILED
    finally:
        admin.stop()


class _SlowJobs(jobs_pb2_grpc.JobsServiceServicer):
    """Answers ListJobs after 0.5 s of waiting on something that is not Redis."""

    async def ListJobs(self, request: jobs_pb2.ListJobsRequest, context: object) -> jobs_pb2.ListJobsResponse:
        await asyncio.sleep(0.5)
        return jobs_pb2.ListJobsResponse(next_page_token="waited")


@pytest.mark.parametrize("redis_deadline", [True, False])
async def test_a_binding_chooses_whether_its_calls_have_the_redis_deadline(
    redis_server: RedisServer, redis_deadline: bool
) -> None:
    redis = create_redis(RedisSettings(port=redis_server.port))
    binding = ServiceBinding.of(
        JOBS,
        jobs_pb2_grpc.add_JobsServiceServicer_to_server,
        _SlowJobs(),  # type: ignore[abstract]  # the RPCs it leaves out answer UNIMPLEMENTED
        redis_deadline=redis_deadline,
    )
    running = await start_server([binding], redis=redis, redis_call_deadline_seconds=0.1)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            call = jobs_pb2_grpc.JobsServiceStub(channel).ListJobs(jobs_pb2.ListJobsRequest(), timeout=10)
            if redis_deadline:
                with pytest.raises(grpc.aio.AioRpcError) as raised:
                    await call
                assert raised.value.code() is grpc.StatusCode.UNAVAILABLE
            else:
                assert (await call).next_page_token == "waited"
    finally:
        await running.server.stop(0)
        await redis.aclose()
