"""The raw taskiq peer of the jobs benchmark: taskiq-redis's stream broker and result backend, one no-op task.

The benchmark builds the same app to send tasks. `python -m bench.raw_taskiq_app --redis-url URL --stream
NAME` runs its worker: one process, taskiq's `Receiver` with up to `--max-async-tasks` tasks at once,
acknowledging a message once its result is saved — the receiver and acknowledgement Switchboard's worker
uses, so the two differ in the broker only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

import uvloop
from taskiq import AsyncTaskiqDecoratedTask
from taskiq.acks import AcknowledgeType
from taskiq.receiver import Receiver
from taskiq_redis import RedisAsyncResultBackend, RedisStreamBroker

logger = logging.getLogger(__name__)

TASK_NAME = "bench.started_at"
CONSUMER_GROUP = "bench"
# Broker and result backend each hold a pool: together they stay within the 50 connections a
# Switchboard process may open, so both peers get the same connection budget.
CONNECTIONS_PER_POOL = 25


async def started_at() -> float:
    """When the task started (Unix seconds): the worker's end of enqueue→start."""
    return time.time()


@dataclass(frozen=True)
class RawTaskiqApp:
    broker: RedisStreamBroker
    backend: RedisAsyncResultBackend[float]
    task: AsyncTaskiqDecoratedTask[[], Coroutine[Any, Any, float]]
    stream: str


def build_app(redis_url: str, stream: str, *, pool_size: int = CONNECTIONS_PER_POOL) -> RawTaskiqApp:
    """The broker on `stream` (results under `stream:` keys) with the one task registered."""
    backend: RedisAsyncResultBackend[float] = RedisAsyncResultBackend(
        redis_url, max_connection_pool_size=pool_size, prefix_str=stream
    )
    broker = RedisStreamBroker(
        redis_url,
        queue_name=stream,
        consumer_group_name=CONSUMER_GROUP,
        max_connection_pool_size=pool_size,
        # redis-py 8 times reads out after 5 s. The benchmark stops this worker (SIGSTOP) while it sends a
        # backlog; if that takes over 5 s, the blocked XREADGROUP times out on resume and the receiver
        # dies. Without a read timeout the read simply returns the backlog.
        socket_timeout=None,
    ).with_result_backend(backend)
    task = broker.register_task(started_at, task_name=TASK_NAME)
    return RawTaskiqApp(broker=broker, backend=backend, task=task, stream=stream)


async def run_worker(app: RawTaskiqApp, max_async_tasks: int) -> None:
    """Runs tasks until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    app.broker.is_worker_process = True
    receiver = Receiver(app.broker, max_async_tasks=max_async_tasks, ack_type=AcknowledgeType.WHEN_SAVED)
    listening = asyncio.create_task(receiver.listen(stop))
    stopping = asyncio.create_task(stop.wait())
    logger.warning("raw taskiq worker started on stream %s, %s tasks at once", app.stream, max_async_tasks)
    await asyncio.wait({listening, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if listening.done():
        stopping.cancel()
        await app.broker.shutdown()
        listening.result()  # raises what stopped the receiver: the process exits with its traceback
        raise RuntimeError("the receiver stopped on its own")
    # The stream broker's blocking read does not see the finish event (FIELD-NOTES): cancel it.
    listening.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await listening
    await app.broker.shutdown()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the raw taskiq benchmark worker.")
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--stream", required=True)
    parser.add_argument("--max-async-tasks", type=int, default=100)
    parser.add_argument("--pool-size", type=int, default=CONNECTIONS_PER_POOL)
    arguments = parser.parse_args(argv)
    # WARNING, as Switchboard's worker silences taskiq's per-task log lines.
    logging.basicConfig(level=logging.WARNING, format="raw-taskiq-worker: %(levelname)s %(message)s")
    app = build_app(arguments.redis_url, arguments.stream, pool_size=arguments.pool_size)
    # On uvloop, as `taskiq worker` runs when uvloop is installed and as Switchboard's worker runs.
    uvloop.run(run_worker(app, arguments.max_async_tasks))


if __name__ == "__main__":
    main()
