"""Fixtures of the integration tier."""

from __future__ import annotations

import json
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from devstack.redis import RedisServer
from devstack.workers import WorkerProcess
from services.jobs.broker import SwitchboardBroker
from services.jobs.catalog import register_tasks
from services.jobs.manager import JobManager
from services.jobs.queues import QUEUE_NAMES, PolicyBook
from services.jobs.store import JobStore
from services.runtime.redis_mux import RedisMux
from services.runtime.redis_pool import create_redis
from services.runtime.settings import RedisSettings


class BlackHole:
    """A TCP port that accepts connections and never answers: a sibling that hangs."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._accepted: list[socket.socket] = []
        self._changed = threading.Condition()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            with self._changed:
                self._accepted.append(connection)
                self._changed.notify_all()

    def wait_for_connections(self, count: int, timeout: float = 10.0) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._accepted) >= count, timeout):
                raise TimeoutError(f"{len(self._accepted)} of {count} connections within {timeout} s")

    def close(self) -> None:
        self._listener.close()
        for connection in self._accepted:
            connection.close()


@pytest.fixture
def black_hole() -> Iterator[BlackHole]:
    hole = BlackHole()
    yield hole
    hole.close()


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = create_redis(RedisSettings(port=redis_server.port))
    yield client
    await client.aclose()


@pytest.fixture
async def redis_mux(redis_server: RedisServer) -> AsyncIterator[RedisMux]:
    mux = RedisMux(RedisSettings(port=redis_server.port))
    yield mux
    await mux.aclose()


@pytest.fixture
def key_prefix() -> str:
    """Each test's jobs live under their own key prefix, so tests share one Redis without meeting."""
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def store(redis_client: Redis, redis_mux: RedisMux, key_prefix: str) -> JobStore:
    return JobStore(redis_client, redis_mux, prefix=key_prefix)


class Workers:
    """Starts real worker processes against the test's Redis and key prefix, with the test's policies."""

    def __init__(self, redis_port: int, key_prefix: str, run_dir: Path) -> None:
        self._redis_port = redis_port
        self._key_prefix = key_prefix
        self._run_dir = run_dir
        self.started: list[WorkerProcess] = []

    def start(self, name: str = "worker", *, queues: tuple[str, ...] = (), **env: str) -> WorkerProcess:
        worker = WorkerProcess(
            f"{name}-{len(self.started)}",
            run_dir=self._run_dir,
            queues=queues,
            env={
                "REDIS_PORT": str(self._redis_port),
                "JOBS_KEY_PREFIX": self._key_prefix,
                "MAINTENANCE_INTERVAL_SECONDS": "0.2",
                **env,
            },
        )
        worker.start()
        self.started.append(worker)
        return worker

    def stop_all(self) -> None:
        for worker in self.started:
            worker.process.kill()


async def store_policies(
    redis: Redis, key_prefix: str, policies: dict[str, object], version: int = 1
) -> None:
    """Writes queue policy overrides where the admin API will (workers read them at start and every tick)."""
    await redis.set(f"{key_prefix}:settings", json.dumps({"version": version, "queue_policies": policies}))


@pytest.fixture
def workers(redis_server: RedisServer, key_prefix: str, tmp_path: Path) -> Iterator[Workers]:
    started = Workers(redis_server.port, key_prefix, tmp_path)
    yield started
    started.stop_all()


def build_manager(store: JobStore) -> JobManager:
    """The Jobs API's domain as the jobs service builds it (catalog of tasks, live policies)."""
    catalog = SwitchboardBroker(store, PolicyBook(), queues=QUEUE_NAMES)
    register_tasks(catalog, diagnostics_enabled=True)
    return JobManager(store, catalog.policies, tasks_for=catalog.tasks_for, max_payload_bytes=1024 * 1024)


@pytest.fixture
def jobs(store: JobStore) -> JobManager:
    return build_manager(store)
