"""Fixtures every tier shares: a real `redis-server` of the tests' own, on a free port in a temp folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.ports import free_port
from devstack.redis import RedisServer


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One Redis for the session; tests that stop or restart Redis start their own instead."""
    server = RedisServer(free_port(), tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis for one test alone, free to be stopped and restarted."""
    server = RedisServer(free_port(), tmp_path / "redis")
    server.start()
    yield server
    server.stop()
