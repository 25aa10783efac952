"""A worker process: taskiq's receiver over Switchboard's broker, stopped gracefully by SIGTERM.

On SIGTERM or SIGINT the worker stops taking jobs, gives the running ones `SHUTDOWN_GRACE_SECONDS` to
finish, hands back any that did not (they go back to WAITING for another worker) and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys

from prometheus_client import start_http_server
from taskiq.acks import AcknowledgeType
from taskiq.receiver import Receiver

from services.jobs.broker import SwitchboardBroker
from services.jobs.catalog import TaskDeclarationError, import_task_modules, register_tasks
from services.jobs.queues import PolicyBook
from services.jobs.settings import WorkerSettings
from services.jobs.store import JobStore
from services.jobs.worker.ratelimit_rules import rules_reader
from services.runtime import event_loop
from services.runtime.channels import open_channel
from services.runtime.logs import configure_logging
from services.runtime.redis_mux import RedisMux
from services.runtime.redis_pool import create_redis
from services.runtime.settings import ConfigurationError, load_settings

logger = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run a Switchboard job worker.")
    parser.add_argument("--queues", help="comma-separated queues to serve (default: all, or $QUEUES)")
    parser.add_argument(
        "--tasks", help="comma-separated modules of your own tasks to import (or $WORKER_TASK_MODULES)"
    )
    arguments = parser.parse_args(argv)
    if arguments.queues:
        os.environ["QUEUES"] = arguments.queues
    if arguments.tasks:
        os.environ["WORKER_TASK_MODULES"] = arguments.tasks
    try:
        settings = load_settings(WorkerSettings)
    except ConfigurationError as error:
        print(f"worker: {error}", file=sys.stderr)  # noqa: T201 - logging is not configured yet
        sys.exit(2)
    configure_logging("worker", settings.log_level)
    try:
        import_task_modules(settings.task_module_list)
    except TaskDeclarationError as error:
        logger.critical("worker: %s", error)
        sys.exit(2)
    # taskiq logs every failed attempt with its traceback; the broker logs it once, structured.
    logging.getLogger("taskiq.receiver.receiver").setLevel(logging.CRITICAL)
    event_loop.run(run_worker(settings))


async def run_worker(settings: WorkerSettings) -> None:
    worker_id = f"{socket.gethostname()}:{os.getpid()}"
    redis = create_redis(settings.redis, client_name=f"switchboard-worker:{worker_id}")
    scripts = RedisMux(settings.redis, client_name=f"switchboard-worker:{worker_id}:mux")
    ratelimit_channel = open_channel(
        settings.peers.ratelimit_address,
        default_timeout=settings.call_timeout_seconds,
        service_key=settings.access.service_key.get_secret_value() if settings.access.service_key else None,
    )
    broker = SwitchboardBroker(
        JobStore(
            redis,
            scripts,
            prefix=settings.jobs_key_prefix,
            max_words_per_job=settings.search_max_words_per_job,
            log_max_lines=settings.job_log_max_lines,
            log_max_line_chars=settings.job_log_max_line_chars,
        ),
        PolicyBook(),
        queues=settings.queue_list,
        worker_id=worker_id,
        maintenance_interval_seconds=settings.maintenance_interval_seconds,
        fetch_rules=rules_reader(ratelimit_channel, deadline_seconds=settings.call_timeout_seconds),
        max_payload_bytes=settings.max_payload_bytes,
        max_result_bytes=settings.max_result_bytes,
        heartbeat_interval_seconds=settings.heartbeat_interval_seconds,
    )
    try:
        register_tasks(broker, diagnostics_enabled=settings.diagnostics_enabled)
    except TaskDeclarationError as error:
        logger.critical("worker: %s", error)
        sys.exit(2)
    broker.is_worker_process = True
    await broker.refresh_policies()
    if settings.metrics_port:
        start_http_server(settings.metrics_port)

    finish = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, finish.set)

    receiver = Receiver(
        broker,
        max_async_tasks=broker.capacity,
        wait_tasks_timeout=settings.shutdown_grace_seconds,
        ack_type=AcknowledgeType.WHEN_SAVED,
    )
    logger.info(
        "worker started",
        extra={
            "queues": settings.queue_list,
            "worker": worker_id,
            "capacity": broker.capacity,
            "task_modules": settings.task_module_list,
        },
    )
    event_loop.freeze_startup_objects()
    stopped_by_loop = asyncio.create_task(_watch_loop_death(broker, finish))
    leaving = asyncio.create_task(_leave_registry_when_stopping(broker, finish))
    await receiver.listen(finish)
    stopped_by_loop.cancel()
    await leaving
    logger.info("stopping: no new jobs taken", extra={"worker": worker_id})
    await broker.shutdown()
    leftovers = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in leftovers:
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.gather(*leftovers, return_exceptions=True)
    await ratelimit_channel.close()
    await scripts.aclose()
    await redis.aclose()
    logger.info("worker stopped", extra={"worker": worker_id})
    if broker.loop_death:
        logger.critical("worker exits because %s", broker.loop_death, extra={"worker": worker_id})
        sys.exit(1)


async def _leave_registry_when_stopping(broker: SwitchboardBroker, finish: asyncio.Event) -> None:
    """A stopping worker leaves the registry at once, not after its running jobs' grace period."""
    await finish.wait()
    await broker.leave_registry()


async def _watch_loop_death(broker: SwitchboardBroker, finish: asyncio.Event) -> None:
    """Ends the receiver when one of the broker's background loops died (the broker stopped taking jobs)."""
    await broker.loop_died.wait()
    finish.set()
