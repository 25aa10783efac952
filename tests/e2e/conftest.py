"""The whole stack for end-to-end tests: real Redis, every service as a process, Envoy in front."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from devstack.ports import free_port
from devstack.redis import RedisServer
from devstack.stack import Stack


@pytest.fixture(scope="session")
def stack(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = Stack(
        tmp_path_factory.mktemp("stack"),
        redis_host="127.0.0.1",
        redis_port=redis_server.port,
        gateway_port=free_port(),
    )
    running.start()
    yield running
    running.stop()


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session
