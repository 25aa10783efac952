"""The worker registry with real worker processes: who is alive, what they run, and a team's own tasks.

A team's task package is written to the test's temp folder, outside the repo, and reaches the worker only
through PYTHONPATH and WORKER_TASK_MODULES, as it would in a deployment. The Jobs API is the real service
(its background refresh of the registry included) on a port of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import struct_pb2
from redis.asyncio import Redis

from devstack.workers import WorkerProcess
from services.jobs.catalog import TaskDeclarationError, task
from services.jobs.server import build
from services.jobs.settings import JobsSettings
from services.runtime.redis_mux import RedisMux
from services.runtime.server import ServiceContext, start_server
from switchboard.jobs.v1 import jobs_pb2, jobs_pb2_grpc
from tests.integration.conftest import Workers
from tests.polling import eventually
from tests.team_package import write_team_package

Api = jobs_pb2_grpc.JobsServiceStub


@pytest.fixture
async def api(redis_client: Redis, redis_mux: RedisMux, key_prefix: str) -> AsyncIterator[Api]:
    settings = JobsSettings(jobs_key_prefix=key_prefix)
    context = ServiceContext(redis=redis_client, redis_mux=redis_mux, exit_stack=contextlib.AsyncExitStack())
    async with context.exit_stack:
        running = await start_server(await build(settings, context), redis=redis_client)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            yield jobs_pb2_grpc.JobsServiceStub(channel)
        await running.server.stop(0)


async def _live_workers(api: Api, queue: str = "") -> list[jobs_pb2.Worker]:
    return list((await api.ListWorkers(jobs_pb2.ListWorkersRequest(queue=queue))).workers)


async def _wait_registered(api: Api, worker: WorkerProcess) -> jobs_pb2.Worker:
    found = await eventually(
        lambda: _live_workers(api),
        lambda workers: any(w.id.endswith(worker.worker_id_suffix) for w in workers),
        timeout=20,
        what=f"{worker.process.name} in ListWorkers",
    )
    return next(w for w in found if w.id.endswith(worker.worker_id_suffix))


async def _submit(
    api: Api, task_name: str, job_id: str, **payload: str | int
) -> jobs_pb2.Job | grpc.StatusCode:
    """The job, or the status code of a refusal (the read of a poll that waits to be accepted)."""
    body = struct_pb2.Struct()
    body.update(payload)
    try:
        return await api.SubmitJob(
            jobs_pb2.SubmitJobRequest(queue="analytics", task=task_name, payload=body, job_id=job_id)
        )
    except grpc.aio.AioRpcError as error:
        return error.code()


async def test_a_worker_registers_what_it_serves(api: Api, workers: Workers) -> None:
    worker = workers.start("analytics-only", queues=("analytics",))
    registered = await _wait_registered(api, worker)
    assert registered.pid == worker.pid
    assert registered.id == f"{registered.host}:{worker.pid}"
    assert list(registered.queues) == ["analytics"]
    assert {"diagnostics.echo", "diagnostics.sleep"} <= set(registered.tasks)
    queues = {q.name: q for q in (await api.ListQueues(jobs_pb2.ListQueuesRequest())).queues}
    assert registered.capacity == queues["analytics"].policy.concurrency
    assert registered.version
    assert registered.started_at.ToMilliseconds() <= registered.last_heartbeat_at.ToMilliseconds()
    assert {name: q.workers for name, q in queues.items()} == {"analytics": 1, "bigquery": 0, "ratelimit": 0}
    assert [w.id for w in await _live_workers(api, "bigquery")] == []


async def test_the_heartbeat_says_how_many_jobs_the_worker_is_running(api: Api, workers: Workers) -> None:
    worker = workers.start("busy", queues=("analytics",), HEARTBEAT_INTERVAL_SECONDS="0.2")
    idle = await _wait_registered(api, worker)
    assert idle.active_jobs == 0
    for index in range(2):
        job = await _submit(api, "diagnostics.sleep", f"busy-{index}", ms=20_000)
        assert isinstance(job, jobs_pb2.Job), job
    busy = await eventually(
        lambda: _wait_registered(api, worker),
        lambda seen: seen.active_jobs == 2,
        timeout=10,
        what="a heartbeat counting both running jobs",
    )
    assert busy.active_jobs <= busy.capacity


async def test_the_heartbeat_goes_on_and_a_killed_worker_drops_out(api: Api, workers: Workers) -> None:
    worker = workers.start("killed", HEARTBEAT_INTERVAL_SECONDS="0.2")
    first = await _wait_registered(api, worker)
    later = await eventually(
        lambda: _wait_registered(api, worker),
        lambda seen: seen.last_heartbeat_at.ToMilliseconds() > first.last_heartbeat_at.ToMilliseconds(),
        timeout=10,
        what="a later heartbeat",
    )
    assert later.started_at == first.started_at
    worker.process.kill()
    await eventually(
        lambda: _live_workers(api),
        lambda live: live == [],
        timeout=10,
        what="the killed worker's record expired",
    )


async def test_a_stopping_worker_leaves_the_registry_at_once(api: Api, workers: Workers) -> None:
    """Deregistered at SIGTERM, while its running job still has its grace period, not at the TTL (30 s)."""
    worker = workers.start("stopping", HEARTBEAT_INTERVAL_SECONDS="10", SHUTDOWN_GRACE_SECONDS="30")
    await _wait_registered(api, worker)
    job = await _submit(api, "diagnostics.sleep", "long-running", ms=20_000)
    assert isinstance(job, jobs_pb2.Job)
    await eventually(
        lambda: api.GetJobStatus(jobs_pb2.GetJobStatusRequest(id=job.id)),
        lambda status: status.state == jobs_pb2.JOB_STATE_ACTIVE,
        timeout=15,
        what="the job runs",
    )
    worker.process.signal(signal.SIGTERM)
    await eventually(lambda: _live_workers(api), lambda live: live == [], timeout=8, what="deregistered")
    assert worker.process.running, "the worker is still in its grace period: it left at the signal"


async def test_the_api_accepts_a_team_task_once_a_live_worker_runs_it(
    api: Api, workers: Workers, tmp_path: Path
) -> None:
    module = write_team_package(tmp_path / "team")
    refused = await _submit(api, "team.greet", "greet-1", name="Ada")
    assert refused == grpc.StatusCode.INVALID_ARGUMENT, "no live worker has it yet"

    worker = workers.start(
        "team", queues=("analytics",), WORKER_TASK_MODULES=module, PYTHONPATH=str(tmp_path / "team")
    )
    registered = await _wait_registered(api, worker)
    assert "team.greet" in registered.tasks
    accepted = await eventually(
        lambda: _submit(api, "team.greet", "greet-1", name="Ada"),
        lambda answer: isinstance(answer, jobs_pb2.Job),
        timeout=10,
        what="the API learned the worker's task",
    )
    assert isinstance(accepted, jobs_pb2.Job)
    result = await eventually(
        lambda: api.GetJobResult(jobs_pb2.GetJobResultRequest(id="greet-1")),
        lambda answer: answer.ready,
        timeout=15,
        what="the team's task completed",
    )
    assert (result.result.struct_value["greeting"], result.result.struct_value["attempt"]) == ("hello Ada", 1)

    # An unknown task's refusal names what is available: the code's tasks and the live worker's.
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await api.SubmitJob(jobs_pb2.SubmitJobRequest(queue="analytics", task="team.nope"))
    assert unknown.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "team.greet" in (unknown.value.details() or "")
    assert "diagnostics.echo" in (unknown.value.details() or "")

    # Once no live worker has it, the API refuses it again.
    await asyncio.to_thread(worker.stop)
    await eventually(
        lambda: _submit(api, "team.greet", "greet-2", name="Bob"),
        lambda answer: answer == grpc.StatusCode.INVALID_ARGUMENT,
        timeout=10,
        what="the API forgot the stopped worker's task",
    )


async def test_in_a_mixed_deployment_only_the_worker_with_the_task_runs_it(
    api: Api, workers: Workers, tmp_path: Path
) -> None:
    """A worker without the team's module beside one with it: every job of the team's task completes on
    the first attempt and delivery, none is failed by the worker that lacks it."""
    module = write_team_package(tmp_path / "team")
    plain = workers.start("plain")
    team = workers.start("team", WORKER_TASK_MODULES=module, PYTHONPATH=str(tmp_path / "team"))
    await _wait_registered(api, plain)
    await _wait_registered(api, team)
    ids = [f"mixed-{index}" for index in range(8)]
    for job_id in ids:
        await eventually(
            lambda job_id=job_id: _submit(api, "team.greet", job_id, name=job_id),  # type: ignore[misc]
            lambda answer: isinstance(answer, jobs_pb2.Job),
            timeout=10,
            what="accepted",
        )
    for job_id in ids:
        done = await eventually(
            lambda job_id=job_id: api.GetJobStatus(jobs_pb2.GetJobStatusRequest(id=job_id)),  # type: ignore[misc]
            lambda job: job.state in (jobs_pb2.JOB_STATE_COMPLETED, jobs_pb2.JOB_STATE_FAILED),
            timeout=20,
            what=f"{job_id} finished",
        )
        assert (done.state, done.attempts_made, done.deliveries) == (jobs_pb2.JOB_STATE_COMPLETED, 1, 1)

    # The task is declared on analytics only: the team's worker serves bigquery too, which still refuses it.
    with pytest.raises(grpc.aio.AioRpcError) as elsewhere:
        await api.SubmitJob(jobs_pb2.SubmitJobRequest(queue="bigquery", task="team.greet"))
    assert elsewhere.value.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize(
    ("modules", "says"),
    [
        ("no_such_team.tasks", "cannot import task module 'no_such_team.tasks'"),
        ("bad module", "not module name(s)"),
        ("too_many_tasks", "a worker registers at most 100"),
    ],
)
async def test_a_worker_with_bad_task_modules_exits_saying_why(
    workers: Workers, tmp_path: Path, modules: str, says: str
) -> None:
    (tmp_path / "too_many_tasks.py").write_text(
        "from services.jobs.catalog import task\n"
        "for index in range(101):\n"
        "    task(queue='analytics', name=f'many.t{index}')(lambda **payload: payload)\n"
    )
    worker = workers.start("bad-modules", WORKER_TASK_MODULES=modules, PYTHONPATH=str(tmp_path))
    code = await asyncio.to_thread(worker.process.wait, 30)
    assert code == 2
    assert says in worker.process.log_path.read_text()


def test_the_task_decorator_refuses_bad_declarations() -> None:
    with pytest.raises(TaskDeclarationError, match="unknown queue"):
        task(queue="mail", name="team.x")
    with pytest.raises(TaskDeclarationError, match="letters, digits"):
        task(queue="analytics", name="team x")
    with pytest.raises(TaskDeclarationError, match="declared twice"):
        task(queue="analytics", name="diagnostics.echo")
