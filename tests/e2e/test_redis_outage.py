"""Redis goes away and comes back, seen through Envoy: every Redis-backed API call answers 503 JSON within
the Redis deadline, health and the connection test say so, nothing accepted is lost, and it all recovers
on its own, without restarting a process.

Two kinds of outage: Redis stopped (connections refused) and Redis stalled (SIGSTOP: connections stay
open and nothing answers, as on a hung server or a partitioned network). Each test runs its own stack on
its own Redis, with the default Redis timeouts, and with an append-only file so that a stopped Redis
comes back with every write it acknowledged.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests
from grpc_health.v1 import health_pb2

from devstack.ports import free_port
from devstack.redis import RedisServer
from devstack.stack import Stack

T = TypeVar("T")

# The Redis deadline of one API call (REDIS_CALL_DEADLINE_SECONDS, default 1 s), plus headroom for Envoy,
# the HTTP client and a busy 2-core machine.
ANSWER_WITHIN_SECONDS = 1.5
UNAVAILABLE = 14


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
def durable_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of this test's own that keeps every acknowledged write across a restart (AOF, fsync always)."""
    server = RedisServer(free_port(), tmp_path / "redis", appendonly=True)
    server.start()
    yield server
    with contextlib.suppress(RuntimeError):  # a test that failed while Redis was paused
        server.resume()
    server.stop()


@pytest.fixture
def outage_stack(durable_redis: RedisServer, tmp_path: Path) -> Iterator[Stack]:
    stack = Stack(
        tmp_path / "stack",
        redis_host="127.0.0.1",
        redis_port=durable_redis.port,
        gateway_port=free_port(),
        env={"HEALTH_CHECK_INTERVAL_SECONDS": "0.1"},  # the Redis timeouts stay at their defaults
    )
    stack.start()
    yield stack
    stack.stop()


@dataclass(frozen=True)
class Answer:
    call: str
    status: int
    body: dict[str, Any]
    seconds: float


def _api_calls(url: str, job_id: str) -> dict[str, Callable[[], requests.Response]]:
    """Every Redis-backed call of the API, by name; `job_id` names an existing job."""
    return {
        "SubmitJob": lambda: requests.post(
            f"{url}/api/job", json={"queue": "analytics", "task": "diagnostics.echo"}, timeout=10
        ),
        "ListJobs": lambda: requests.get(f"{url}/api/job", params={"queue": "analytics"}, timeout=10),
        "GetJobStatus": lambda: requests.get(f"{url}/api/job/status", params={"id": job_id}, timeout=10),
        "GetJobResult": lambda: requests.get(f"{url}/api/job/result", params={"id": job_id}, timeout=10),
        "CancelJob": lambda: requests.post(f"{url}/api/job/cancel", json={"id": job_id}, timeout=10),
        "RetryJob": lambda: requests.post(f"{url}/api/job/retry", json={"id": job_id}, timeout=10),
        "ListQueues": lambda: requests.get(f"{url}/api/queues", timeout=10),
        "PauseQueue": lambda: requests.post(f"{url}/api/queues/bigquery/pause", json={}, timeout=10),
        "ResumeQueue": lambda: requests.post(f"{url}/api/queues/bigquery/resume", json={}, timeout=10),
        "CleanQueue": lambda: requests.post(
            f"{url}/api/queues/analytics/clean", json={"state": "JOB_STATE_COMPLETED"}, timeout=10
        ),
        "PutRule": lambda: requests.put(
            f"{url}/api/rate-limits/outage", json={"limit": 5, "period": "1s"}, timeout=10
        ),
        "DeleteRule": lambda: requests.delete(f"{url}/api/rate-limits/api", timeout=10),
        "CheckRateLimit": lambda: requests.post(
            f"{url}/api/rate-limits/check", json={"rule": "api", "key": "outage"}, timeout=10
        ),
        "GetUsage": lambda: requests.get(
            f"{url}/api/rate-limits/usage", params={"rule": "api", "key": "outage"}, timeout=10
        ),
    }


def _call_all(calls: dict[str, Callable[[], requests.Response]]) -> list[Answer]:
    def timed(item: tuple[str, Callable[[], requests.Response]]) -> Answer:
        name, call = item
        started = time.monotonic()
        response = call()
        seconds = time.monotonic() - started
        try:
            body = response.json()
        except ValueError:
            body = {"not json": response.text[:200]}
        return Answer(name, response.status_code, body, round(seconds, 3))

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(timed, calls.items()))


def _submit(url: str, job_id: str) -> requests.Response:
    return requests.post(
        f"{url}/api/job",
        json={"queue": "analytics", "task": "diagnostics.echo", "jobId": job_id, "payload": {"id": job_id}},
        timeout=10,
    )


def _state(url: str, job_id: str) -> str | None:
    response = requests.get(f"{url}/api/job/status", params={"id": job_id}, timeout=10)
    return str(response.json()["state"]) if response.status_code == 200 else None


class _Submitter:
    """Submits jobs one after another until stopped, remembering every one the API accepted (200)."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._stop = threading.Event()
        self.accepted: list[str] = []
        self.refused: list[int] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _Submitter:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            job_id = f"outage-{uuid.uuid4().hex}"
            response = _submit(self._url, job_id)
            if response.status_code == 200:
                self.accepted.append(job_id)
            else:
                self.refused.append(response.status_code)
                time.sleep(0.05)


def _assert_every_call_unavailable(stack: Stack, job_id: str) -> None:
    answers = _call_all(_api_calls(stack.gateway_url, job_id))
    wrong = [a for a in answers if a.status != 503 or a.body.get("code") != UNAVAILABLE]
    assert not wrong, f"not 503 UNAVAILABLE JSON: {wrong}"
    slow = [a for a in answers if a.seconds > ANSWER_WITHIN_SECONDS]
    assert not slow, f"answered later than {ANSWER_WITHIN_SECONDS} s: {slow}"
    for answer in answers:
        assert "Redis" in answer.body["message"] and "retry" in answer.body["message"], answer
    checks = [a for a in answers if a.call in ("CheckRateLimit", "GetUsage")]
    assert all(a.seconds < 0.5 for a in checks), f"a check keeps to the limiter's 40 ms deadline: {checks}"

    # The rules in force are each instance's copy: listing them needs no Redis.
    assert requests.get(f"{stack.gateway_url}/api/rate-limits", timeout=10).status_code == 200
    report = requests.get(f"{stack.gateway_url}/api/test-connection", timeout=10)
    assert report.status_code == 200, "the connection test always answers"
    redis_check = next(c for c in report.json()["checks"] if c["name"] == "redis")
    assert redis_check["status"] == "CHECK_STATUS_FAILED", redis_check


def _statuses(stack: Stack) -> set[int | None]:
    return {service.health() for service in stack.services.values()}


def _assert_recovered(
    stack: Stack, accepted_before: list[str], submitter: _Submitter, pids: dict[str, int]
) -> None:
    _eventually(
        lambda: _statuses(stack),
        lambda s: s == {health_pb2.HealthCheckResponse.SERVING},
        timeout=15,
        what="every service SERVING again",
    )
    url = stack.gateway_url
    assert requests.get(f"{url}/api/test-connection", timeout=10).json()["ok"] is True
    assert requests.get(f"{url}/api/queues", timeout=10).status_code == 200
    after = f"after-{uuid.uuid4().hex}"
    assert _submit(url, after).status_code == 200
    accepted = [*accepted_before, *submitter.accepted, after]
    for job_id in accepted:
        _eventually(
            lambda job_id=job_id: _state(url, job_id),  # type: ignore[misc]
            lambda state: state == "JOB_STATE_COMPLETED",
            timeout=30,
            what=f"accepted job {job_id} completed",
        )
    assert pids == _pids(stack), "nothing was restarted"


def _pids(stack: Stack) -> dict[str, int]:
    return {name: s.process.pid for name, s in stack.services.items()} | {
        w.process.name: w.pid for w in stack.workers
    }


def test_redis_stopped_every_call_answers_503_at_once_and_all_recovers(
    outage_stack: Stack, durable_redis: RedisServer
) -> None:
    url = outage_stack.gateway_url
    accepted_before = [f"before-{uuid.uuid4().hex}" for _ in range(5)]
    for job_id in accepted_before:
        assert _submit(url, job_id).status_code == 200
    pids = _pids(outage_stack)

    with _Submitter(url) as submitter:
        durable_redis.stop()
        _assert_every_call_unavailable(outage_stack, accepted_before[0])
        _eventually(
            lambda: _statuses(outage_stack),
            lambda s: s == {health_pb2.HealthCheckResponse.NOT_SERVING},
            timeout=10,
            what="every service NOT_SERVING",
        )
        durable_redis.start()
        _eventually(lambda: len(submitter.accepted), lambda n: n >= 3, timeout=15, what="submits accepted")
    assert submitter.refused, "the submitter ran into the outage"
    _assert_recovered(outage_stack, accepted_before, submitter, pids)


def test_redis_stalled_every_call_answers_503_within_the_deadline_and_all_recovers(
    outage_stack: Stack, durable_redis: RedisServer
) -> None:
    url = outage_stack.gateway_url
    accepted_before = [f"before-{uuid.uuid4().hex}" for _ in range(5)]
    for job_id in accepted_before:
        assert _submit(url, job_id).status_code == 200
    pids = _pids(outage_stack)

    with _Submitter(url) as submitter:
        durable_redis.pause()
        try:
            _assert_every_call_unavailable(outage_stack, accepted_before[0])
            _eventually(
                lambda: _statuses(outage_stack),
                lambda s: s == {health_pb2.HealthCheckResponse.NOT_SERVING},
                timeout=10,
                what="every service NOT_SERVING",
            )
        finally:
            durable_redis.resume()
        _eventually(lambda: len(submitter.accepted), lambda n: n >= 3, timeout=15, what="submits accepted")
    assert submitter.refused, "the submitter ran into the outage"
    _assert_recovered(outage_stack, accepted_before, submitter, pids)
