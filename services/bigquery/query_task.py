"""The `bigquery.query` task, on the `bigquery` queue: runs one query in BigQuery and records where its
result is, never the rows themselves.

Workers load it with `WORKER_TASK_MODULES=services.bigquery.query_task`. The payload is what
`SubmitQuery` (or `RunQuery`) validated: `sql`, `parameters` (`[{name, type, value}]`, checked again
here), `max_bytes_billed`, `labels`, `principal`. The task starts the BigQuery job (labelled with the
caller and our job id, capped in bytes), records BigQuery's job id and location as the job's progress as
soon as it has them, waits for the query within the queue's timeout (the attempt is cancelled past it,
and so is the BigQuery job), and returns the job id, location and totals; GetQueryResults reads the
rows from BigQuery page by page. A cancelled job cancels its BigQuery job too.

When the job's outcome is recorded (done, failed for good, cancelled), its end is announced on
`services.bigquery.completion.channel_for(job_id)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from redis.asyncio import Redis
from taskiq import TaskiqDepends

from services.access.settings import AccessSettings
from services.bigquery import completion, parameters, payload_seal, sql_guard
from services.bigquery.job_errors import to_job_error
from services.jobs.catalog import task
from services.jobs.context import JobCancelledError, JobContext, current_job
from services.runtime.channels import open_channel
from services.runtime.errors import JobError, NonRetryableError, SwitchboardError
from services.runtime.redis_pool import create_redis
from services.runtime.settings import PeerAddresses, RedisSettings, load_settings
from services.warehouse.backend import BigQueryBackend, JobRef, QueryRequest, job_labels
from services.warehouse.settings import BigQueryBackendSettings
from switchboard.jobs.v1 import jobs_pb2, jobs_pb2_grpc

logger = logging.getLogger(__name__)

TASK_NAME = "bigquery.query"
QUEUE = "bigquery"
# How often a running query is looked at (a cancellation is noticed within this).
POLL_SECONDS = 1.0
# How long the end announcement waits for the job's outcome to be recorded.
ANNOUNCE_WITHIN_SECONDS = 10.0
_ANNOUNCE_INTERVAL_SECONDS = 0.01
_ENDED = {
    jobs_pb2.JOB_STATE_COMPLETED,
    jobs_pb2.JOB_STATE_FAILED,
    jobs_pb2.JOB_STATE_CANCELLED,
    jobs_pb2.JOB_STATE_DEAD_LETTERED,
}


class _Resources:
    """What the task needs in a worker process, made on first use: the backend, Redis, the jobs API."""

    def __init__(self) -> None:
        self.backend = BigQueryBackend(load_settings(BigQueryBackendSettings))
        self.redis: Redis = create_redis(
            load_settings(RedisSettings), client_name="switchboard-bigquery-task"
        )
        access = load_settings(AccessSettings)
        self.jobs_channel = open_channel(
            load_settings(PeerAddresses).jobs_address,
            default_timeout=2.0,
            service_key=access.service_key.get_secret_value() if access.service_key else None,
        )
        self.jobs = jobs_pb2_grpc.JobsServiceStub(self.jobs_channel)
        self.service_key = access.service_key.get_secret_value() if access.service_key else None
        self.announcements: set[asyncio.Task[None]] = set()


_resources: _Resources | None = None


def _get_resources() -> _Resources:
    global _resources  # noqa: PLW0603 - one set per worker process, made when the first query runs
    if _resources is None:
        _resources = _Resources()
    return _resources


def _query_parameters(given: list[dict[str, Any]]) -> list[Any]:
    inputs = [
        parameters.QueryParameterInput(str(p.get("name", "")), str(p.get("type", "")), p.get("value"))
        for p in given
    ]
    return parameters.to_bigquery(parameters.from_wire(inputs))


@task(name=TASK_NAME, queue=QUEUE)
async def run_query(  # noqa: PLR0917 - the payload's fields, as taskiq passes them
    sql: str,
    parameters: list[dict[str, Any]] | None = None,
    max_bytes_billed: int = 0,
    labels: dict[str, str] | None = None,
    principal: str = "unknown",
    seal: str = "",
    shared: bool = False,
    job: JobContext = TaskiqDepends(current_job),
) -> dict[str, Any]:
    resources = _get_resources()
    try:
        payload = {"sql": sql, "parameters": parameters or [], "max_bytes_billed": max_bytes_billed,
                   "labels": labels or {}, "principal": principal, payload_seal.SEAL_FIELD: seal}  # fmt: skip
        if shared:  # RunQuery's (single flight); sealed with it
            payload["shared"] = True
        if not payload_seal.verifies(payload, resources.service_key, job.job_id):
            _check_unsealed(resources.backend, sql)
            max_bytes_billed = 0  # the configured default cap, not one the submitter chose
        return await _run(
            resources.backend,
            job,
            sql=sql,
            given_parameters=parameters or [],
            max_bytes_billed=int(max_bytes_billed),
            labels=labels,
            principal=principal,
        )
    finally:
        _announce_when_recorded(resources, job.job_id)


def _check_unsealed(backend: BigQueryBackend, sql: str) -> None:
    """A job SubmitQuery did not seal (RunQuery's, or one submitted straight to the jobs API) runs only
    as a read query on the default dataset: what any caller of the query APIs may run."""
    settings = backend.settings
    try:
        sql_guard.inspect(
            sql,
            default_dataset=settings.bigquery_default_dataset,
            allowed_datasets=(),
            allow_writes=False,
            project=settings.project,
        )
    except SwitchboardError as error:
        raise NonRetryableError(f"query refused: {error.message}") from None


async def _run(
    backend: BigQueryBackend,
    job: JobContext,
    *,
    sql: str,
    given_parameters: list[dict[str, Any]],
    max_bytes_billed: int,
    labels: dict[str, str] | None,
    principal: str,
) -> dict[str, Any]:
    try:
        query_parameters = _query_parameters(given_parameters)
    except SwitchboardError as error:
        raise NonRetryableError(f"bad query parameters: {error.message}") from None
    request = QueryRequest(
        sql=sql,
        parameters=query_parameters,
        labels=job_labels(principal=principal, job_id=job.job_id, extra=labels),
        maximum_bytes_billed=max_bytes_billed or None,
    )
    job.raise_if_cancelled()
    try:
        started = await backend.start_query(request)
    except Exception as error:
        failure = to_job_error(error)
        await job.set_progress({"error": _error_detail(failure)})
        raise failure from error
    ref = JobRef(started.job_id, started.location)
    await job.set_progress({"bigquery_job_id": ref.job_id, "location": ref.location})
    try:
        finished = await _wait(backend, job, ref)
    except (asyncio.CancelledError, JobCancelledError):
        # Cancelled, or past the queue's timeout: BigQuery's job stops too.
        await asyncio.shield(_cancel_quietly(backend, ref))
        raise
    except Exception as error:
        failure = to_job_error(error, bigquery_job_id=ref.job_id)
        await job.set_progress(
            {"bigquery_job_id": ref.job_id, "location": ref.location, "error": _error_detail(failure)}
        )
        raise failure from error
    result: dict[str, Any] = {
        "bigquery_job_id": ref.job_id,
        "location": ref.location,
        "statement_type": finished.statement_type,
        "total_bytes_processed": int(finished.total_bytes_processed or 0),
    }
    if finished.num_dml_affected_rows is not None:
        result["num_dml_affected_rows"] = int(finished.num_dml_affected_rows)
    return result


def _error_detail(failure: JobError) -> dict[str, str]:
    """Where GetQueryResults finds BigQuery's reason, message and location."""
    return {
        "reason": failure.metadata.get("reason") or type(failure).__name__,
        "message": failure.message,
        "location": failure.metadata.get("location", ""),
    }


async def _wait(backend: BigQueryBackend, job: JobContext, ref: JobRef) -> Any:
    while True:
        job.raise_if_cancelled()
        current = await backend.get_job(ref)
        # The state as just fetched (in the pool): `done()` would call the API again, on the loop.
        if current.state == "DONE":
            if current.error_result:
                # result() raises BigQuery's error, with its reason, message and location.
                await backend.wait_done(ref, wait_seconds=backend.api_deadline_seconds)
            return current
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(job.cancelled.wait(), timeout=POLL_SECONDS)


async def _cancel_quietly(backend: BigQueryBackend, ref: JobRef) -> None:
    try:
        await backend.cancel(ref)
    except Exception as error:  # the attempt ends anyway; BigQuery's job is capped in bytes and time
        logger.warning("could not cancel BigQuery job %s: %s", ref.job_id, error)


def _announce_when_recorded(resources: _Resources, job_id: str) -> None:
    """Publishes the job's end once its outcome is recorded (after this task returns): waiters that wake
    then read the ended state. A job that is retried instead is not announced."""
    announcement = asyncio.get_running_loop().create_task(_announce(resources, job_id))
    resources.announcements.add(announcement)
    announcement.add_done_callback(resources.announcements.discard)


async def _announce(resources: _Resources, job_id: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ANNOUNCE_WITHIN_SECONDS
    try:
        while loop.time() < deadline:
            status = await resources.jobs.GetJobStatus(jobs_pb2.GetJobStatusRequest(id=job_id))
            if status.state in _ENDED:
                await resources.redis.publish(completion.channel_for(job_id), job_id)
                return
            if status.state != jobs_pb2.JOB_STATE_ACTIVE:
                return  # waiting again for a retry: not the end
            await asyncio.sleep(_ANNOUNCE_INTERVAL_SECONDS)
    except Exception as error:  # a lost notice costs waiters their wait
        logger.warning("could not announce the end of job %s: %s", job_id, error)
