"""Wires the jobs service: the job store, the policies, the task catalog and the servicer."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from prometheus_client import start_http_server

from services.jobs import metrics
from services.jobs.broker import SwitchboardBroker
from services.jobs.catalog import register_tasks
from services.jobs.manager import JobManager
from services.jobs.queues import QUEUE_NAMES, PolicyBook
from services.jobs.registry import LiveWorkers, WorkerRegistry
from services.jobs.servicer import JobsServicer
from services.jobs.settings import JobsSettings
from services.jobs.store import JobStore
from services.runtime.server import ServiceBinding, ServiceContext
from switchboard.jobs.v1 import jobs_pb2, jobs_pb2_grpc

POLICY_REFRESH_SECONDS = 1.0
WORKERS_REFRESH_SECONDS = 1.0


async def build(settings: JobsSettings, context: ServiceContext) -> Sequence[ServiceBinding]:
    store = JobStore(
        context.redis,
        context.redis_mux,
        prefix=settings.jobs_key_prefix,
        max_words_per_job=settings.search_max_words_per_job,
        log_max_lines=settings.job_log_max_lines,
        log_max_line_chars=settings.job_log_max_line_chars,
    )
    # The service never runs tasks; the broker here only knows which tasks each queue accepts.
    catalog = SwitchboardBroker(
        store, PolicyBook(), queues=QUEUE_NAMES, max_payload_bytes=settings.max_payload_bytes
    )
    register_tasks(catalog, diagnostics_enabled=settings.diagnostics_enabled)
    await catalog.refresh_policies()
    context.run_in_background(
        "policies",
        partial(catalog.policy_source.follow, reread_seconds=POLICY_REFRESH_SECONDS),
        interval_seconds=POLICY_REFRESH_SECONDS,
    )
    # SubmitJob also accepts the tasks live workers registered; it reads this view, not Redis.
    workers = LiveWorkers(WorkerRegistry(context.redis, settings.jobs_key_prefix))
    context.run_in_background("workers", workers.refresh, interval_seconds=WORKERS_REFRESH_SECONDS)
    if settings.metrics_port:
        start_http_server(settings.metrics_port)
        context.run_in_background(
            "queue-depth",
            lambda: _read_queue_depths(store),
            interval_seconds=settings.queue_depth_interval_seconds,
        )
    manager = JobManager(
        store,
        catalog.policies,
        tasks_for=catalog.tasks_for,
        workers=workers,
        max_payload_bytes=settings.max_payload_bytes,
        bulk_max_jobs=settings.bulk_max_jobs_per_call,
    )
    return [
        ServiceBinding.of(
            jobs_pb2.DESCRIPTOR.services_by_name["JobsService"],
            jobs_pb2_grpc.add_JobsServiceServicer_to_server,
            JobsServicer(manager),
        )
    ]


async def _read_queue_depths(store: JobStore) -> None:
    """`switchboard_queue_jobs` from the store's per-state counts: what autoscalers and dashboards read.
    A failed reading (Redis down) leaves the gauge at its last values; the service's health says why."""
    for queue in QUEUE_NAMES:
        counts = await store.counts(queue)
        metrics.observe_queue_counts(queue, {str(state): n for state, n in counts.items()})
