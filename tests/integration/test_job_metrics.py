"""Prometheus metrics from the jobs service and a worker: outcomes per queue, wait and run times."""

from __future__ import annotations

import asyncio
import urllib.request
from pathlib import Path

import grpc

from devstack.ports import free_port
from devstack.redis import RedisServer
from devstack.services import ServiceProcess
from switchboard.jobs.v1 import jobs_pb2, jobs_pb2_grpc
from tests.integration.conftest import Workers
from tests.polling import eventually


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text: str = response.read().decode()
        return text


async def test_service_and_worker_export_job_metrics(
    redis_server: RedisServer, key_prefix: str, workers: Workers, tmp_path: Path
) -> None:
    service_metrics, worker_metrics = free_port(), free_port()
    service = ServiceProcess(
        "jobs",
        run_dir=tmp_path,
        env={
            "REDIS_PORT": str(redis_server.port),
            "JOBS_KEY_PREFIX": key_prefix,
            "METRICS_PORT": str(service_metrics),
        },
    )
    service.start()
    try:
        await asyncio.to_thread(service.wait_ready)
        workers.start("a", METRICS_PORT=str(worker_metrics))
        async with grpc.aio.insecure_channel(service.address) as channel:
            api = jobs_pb2_grpc.JobsServiceStub(channel)
            for task in ("diagnostics.echo", "diagnostics.echo"):
                await api.SubmitJob(jobs_pb2.SubmitJobRequest(queue="analytics", task=task))
            failing = await api.SubmitJob(
                jobs_pb2.SubmitJobRequest(queue="analytics", task="diagnostics.fail", max_attempts=1)
            )
            await eventually(
                lambda: api.GetJobStatus(jobs_pb2.GetJobStatusRequest(id=failing.id)),
                lambda job: job.state == jobs_pb2.JOB_STATE_FAILED,
                timeout=15,
                what="the failing job failed",
            )
        worker_text = await eventually(
            lambda: asyncio.to_thread(_scrape, worker_metrics),
            lambda text: 'switchboard_jobs_finished_total{outcome="failed",queue="analytics"} 1.0' in text,
            timeout=10,
            what="the worker's outcome counters",
            tolerate=(OSError,),
        )
        assert 'switchboard_jobs_finished_total{outcome="completed",queue="analytics"} 2.0' in worker_text
        assert 'switchboard_job_wait_seconds_count{queue="analytics"} 3.0' in worker_text
        assert "switchboard_job_run_seconds_bucket" in worker_text
        service_text = await asyncio.to_thread(_scrape, service_metrics)
        assert 'switchboard_jobs_submitted_total{queue="analytics"} 3.0' in service_text
    finally:
        service.stop()


async def test_service_exports_queue_depth_by_state(
    redis_server: RedisServer, key_prefix: str, tmp_path: Path
) -> None:
    """`switchboard_queue_jobs{queue,state}` follows the store: what KEDA scales the workers on."""
    metrics_port = free_port()
    service = ServiceProcess(
        "jobs",
        run_dir=tmp_path,
        env={
            "REDIS_PORT": str(redis_server.port),
            "JOBS_KEY_PREFIX": key_prefix,
            "METRICS_PORT": str(metrics_port),
            "QUEUE_DEPTH_INTERVAL_SECONDS": "0.05",
        },
    )
    service.start()
    try:
        await asyncio.to_thread(service.wait_ready)
        async with grpc.aio.insecure_channel(service.address) as channel:
            api = jobs_pb2_grpc.JobsServiceStub(channel)
            # No worker runs: these stay where they are put.
            waiting = [
                await api.SubmitJob(jobs_pb2.SubmitJobRequest(queue="bigquery", task="diagnostics.echo"))
                for _ in range(3)
            ]
            await api.SubmitJob(
                jobs_pb2.SubmitJobRequest(queue="bigquery", task="diagnostics.echo", delay_ms=3_600_000)
            )
            await eventually(
                lambda: asyncio.to_thread(_scrape, metrics_port),
                lambda text: (
                    'switchboard_queue_jobs{queue="bigquery",state="waiting"} 3.0' in text
                    and 'switchboard_queue_jobs{queue="bigquery",state="delayed"} 1.0' in text
                ),
                timeout=10,
                what="the depth of the bigquery queue",
                tolerate=(OSError,),
            )
            await api.CancelJob(jobs_pb2.CancelJobRequest(id=waiting[0].id))
            text = await eventually(
                lambda: asyncio.to_thread(_scrape, metrics_port),
                lambda text: 'switchboard_queue_jobs{queue="bigquery",state="waiting"} 2.0' in text,
                timeout=10,
                what="the depth after a cancellation",
            )
            assert 'switchboard_queue_jobs{queue="bigquery",state="cancelled"} 1.0' in text
            assert 'switchboard_queue_jobs{queue="analytics",state="waiting"} 0.0' in text
    finally:
        service.stop()
