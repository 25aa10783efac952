"""The whole stack for end-to-end tests: real Redis, every service as a process, Envoy in front."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from devstack.bigquery_emulator import BigQueryEmulator
from devstack.ports import free_port
from devstack.redis import RedisServer
from devstack.stack import Stack
from tests.bigquery_emulator import bigquery_emulator, sample_events

__all__ = ["bigquery_emulator", "sample_events"]  # fixtures for the e2e tests


@pytest.fixture(scope="session")
def stack(
    redis_server: RedisServer, bigquery_emulator: BigQueryEmulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    running = Stack(
        tmp_path_factory.mktemp("stack"),
        redis_host="127.0.0.1",
        redis_port=redis_server.port,
        gateway_port=free_port(),
        env=bigquery_emulator.env,
    )
    running.start()
    yield running
    running.stop()


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session
