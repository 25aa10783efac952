"""Redis goes away and comes back: the connection test and health say so, and recover on their own."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
import requests
from grpc_health.v1 import health_pb2

from devstack.ports import free_port
from devstack.redis import RedisServer
from devstack.stack import Stack

T = TypeVar("T")


def _eventually(read: Callable[[], T], accept: Callable[[T], bool], *, timeout: float, what: str) -> T:
    """Polls `read()` until `accept` holds for its value; fails naming `what` and the last value."""
    deadline = time.monotonic() + timeout
    value = read()
    while not accept(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s; last: {value!r}")
        time.sleep(0.05)
        value = read()
    return value


@pytest.fixture
def outage_stack(own_redis: RedisServer, tmp_path: Path) -> Iterator[Stack]:
    stack = Stack(
        tmp_path / "stack",
        redis_host="127.0.0.1",
        redis_port=own_redis.port,
        gateway_port=free_port(),
        env={"HEALTH_CHECK_INTERVAL_SECONDS": "0.1", "REDIS_TIMEOUT_SECONDS": "0.3"},
    )
    stack.start()
    yield stack
    stack.stop()


def test_redis_outage_is_reported_and_recovered_without_restarts(
    outage_stack: Stack, own_redis: RedisServer
) -> None:
    url = f"{outage_stack.gateway_url}/api/test-connection"

    def report() -> dict[str, object]:
        response = requests.get(url, timeout=10)
        assert response.status_code == 200, "the connection test always answers"
        body: dict[str, object] = response.json()
        return body

    def statuses() -> dict[str, int | None]:
        return {name: service.health() for name, service in outage_stack.services.items()}

    assert report()["ok"] is True
    pids = {name: service.process.pid for name, service in outage_stack.services.items()}

    own_redis.stop()
    down = report()
    assert down["ok"] is False
    redis_check = next(c for c in down["checks"] if c["name"] == "redis")  # type: ignore[attr-defined]
    assert redis_check["ok"] is False
    assert redis_check["status"] == "CHECK_STATUS_FAILED"
    assert "Error" in redis_check["detail"], redis_check
    _eventually(
        statuses,
        lambda s: set(s.values()) == {health_pb2.HealthCheckResponse.NOT_SERVING},
        timeout=10,
        what="every service NOT_SERVING",
    )

    own_redis.start()
    _eventually(
        statuses,
        lambda s: set(s.values()) == {health_pb2.HealthCheckResponse.SERVING},
        timeout=10,
        what="every service SERVING again",
    )
    assert report()["ok"] is True
    assert pids == {name: service.process.pid for name, service in outage_stack.services.items()}, (
        "nothing was restarted"
    )
