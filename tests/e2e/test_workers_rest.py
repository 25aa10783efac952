"""A team's own task through Envoy: a worker started with the team's module runs it, GET /api/workers lists
the worker with its tasks, and GET /api/queues shows which queues no live worker serves."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import requests

from devstack.ports import free_port
from devstack.redis import RedisServer
from devstack.stack import Stack
from devstack.workers import WorkerProcess
from tests.team_package import write_team_package


def _poll(
    read: Callable[[], requests.Response],
    accept: Callable[[requests.Response], object],
    *,
    timeout: float,
    what: str,
) -> requests.Response:
    """Polls an HTTP call until its answer is accepted, or fails with the last answer."""
    deadline = time.monotonic() + timeout
    while True:
        response = read()
        if accept(response):
            return response
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{what}: not within {timeout} s; last {response.status_code} {response.text}"
            )
        time.sleep(0.05)


def _unserved_on_the_dashboard(stack: Stack, http: requests.Session) -> set[str]:
    """The queues the dashboard's workers page badges as served by no live worker; the overview agrees."""
    board = f"{stack.gateway_url}/api/bull-board"
    workers_page = http.get(f"{board}/workers", auth=stack.admin_auth, timeout=10)
    assert workers_page.status_code == 200, workers_page.text[:300]
    badged = set(
        re.findall(r'/queues/([a-z]+)">[a-z]+</a> <span class="badge bad">no live worker', workers_page.text)
    )
    overview = http.get(f"{board}/", auth=stack.admin_auth, timeout=10).text
    rows = {name: overview.split(f'data-queue="{name}"', 1)[1].split("</tr>", 1)[0] for name in _QUEUES}
    assert {name for name, row in rows.items() if ">no workers</span>" in row} == badged
    return badged


_QUEUES = ("analytics", "bigquery", "ratelimit")


def test_a_team_task_runs_through_the_gateway(
    redis_server: RedisServer, tmp_path: Path, http: requests.Session
) -> None:
    """A stack of its own: no worker at first, jobs under a key prefix no other test uses."""
    prefix = f"sb-{uuid.uuid4().hex[:8]}"
    stack = Stack(
        tmp_path / "stack",
        redis_host="127.0.0.1",
        redis_port=redis_server.port,
        gateway_port=free_port(),
        env={"JOBS_KEY_PREFIX": prefix},
        workers=0,
    )
    stack.start()
    try:
        _run_a_team_task(stack, redis_server, tmp_path, http, prefix)
    finally:
        stack.stop()


def _run_a_team_task(
    stack: Stack, redis_server: RedisServer, tmp_path: Path, http: requests.Session, prefix: str
) -> None:
    url = stack.gateway_url
    queues = {q["name"]: q for q in http.get(f"{url}/api/queues", timeout=10).json()["queues"]}
    assert {name: q["workers"] for name, q in queues.items()} == {
        "analytics": 0,
        "bigquery": 0,
        "ratelimit": 0,
    }
    # The dashboard warns of every queue no live worker serves.
    assert _unserved_on_the_dashboard(stack, http) == {"analytics", "bigquery", "ratelimit"}
    refused = http.post(f"{url}/api/job", json={"queue": "analytics", "task": "team.greet"}, timeout=10)
    assert refused.status_code == 400
    assert "no task 'team.greet'" in refused.json()["message"]

    module = write_team_package(tmp_path / "team")
    peers = {f"{name.upper()}_ADDRESS": address for name, address in stack.peers.by_service().items()}
    worker = WorkerProcess(
        "team-worker",
        run_dir=stack.run_dir,
        queues=("analytics",),
        env={
            "REDIS_HOST": "127.0.0.1",
            "REDIS_PORT": str(redis_server.port),
            "JOBS_KEY_PREFIX": prefix,
            "PYTHONPATH": str(tmp_path / "team"),
            **peers,
        },
    )
    worker.process.command += ["--tasks", module]
    worker.start()
    try:
        listed = _poll(
            lambda: http.get(f"{url}/api/workers", timeout=10),
            lambda response: response.status_code == 200 and response.json()["workers"],
            timeout=30,
            what="GET /api/workers lists the team's worker",
        ).json()["workers"]
        assert [w["pid"] for w in listed] == [worker.pid]
        assert listed[0]["queues"] == ["analytics"]
        assert "team.greet" in listed[0]["tasks"]
        assert "diagnostics.echo" in listed[0]["tasks"]
        assert listed[0]["capacity"] >= 1
        assert _unserved_on_the_dashboard(stack, http) == {"bigquery", "ratelimit"}

        submitted = _poll(
            lambda: http.post(
                f"{url}/api/job",
                json={
                    "queue": "analytics",
                    "task": "team.greet",
                    "payload": {"name": "Ada"},
                    "jobId": "greet-e2e",
                },
                timeout=10,
            ),
            lambda response: response.status_code != 400,
            timeout=10,
            what="POST /api/job accepts the team's task",
        )
        assert submitted.status_code == 200, submitted.text
        result = _poll(
            lambda: http.get(f"{url}/api/job/result", params={"id": "greet-e2e"}, timeout=10),
            lambda response: response.json().get("ready") is True,
            timeout=30,
            what="the team's job completed",
        ).json()
        assert result["state"] == "JOB_STATE_COMPLETED"
        assert result["result"] == {"greeting": "hello Ada", "attempt": 1}

        queues = {q["name"]: q for q in http.get(f"{url}/api/queues", timeout=10).json()["queues"]}
        assert {name: q["workers"] for name, q in queues.items()} == {
            "analytics": 1,
            "bigquery": 0,
            "ratelimit": 0,
        }
        on_bigquery = http.get(f"{url}/api/workers", params={"queue": "bigquery"}, timeout=10).json()
        assert on_bigquery == {"workers": []}
    finally:
        worker.stop()
