"""BigQuery unreachable: queries are retried with the queue's backoff and then fail, and no API call hangs.

A stack of its own whose BigQuery endpoint accepts connections and never answers (a hung server, the
hard case: a refused connection fails at once). The client's deadlines are short here, as they are
explicit everywhere.
"""

from __future__ import annotations

import datetime as dt
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from devstack.ports import free_port
from devstack.redis import RedisServer
from devstack.stack import Stack

API_DEADLINE_SECONDS = 1.0
# Each API call answers within this (the BigQuery deadline, plus the gateway's and the jobs API's time).
ANSWER_WITHIN_SECONDS = API_DEADLINE_SECONDS + 4.0


@pytest.fixture(scope="module")
def hung_endpoint() -> Iterator[str]:
    """A port that accepts connections (the kernel's backlog) and never answers a byte."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(512)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


@pytest.fixture(scope="module")
def outage_stack(
    redis_server: RedisServer, hung_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    stack = Stack(
        tmp_path_factory.mktemp("bigquery-outage"),
        redis_host="127.0.0.1",
        redis_port=redis_server.port,
        gateway_port=free_port(),
        env={
            # Jobs of its own: no other stack's worker takes them.
            "JOBS_KEY_PREFIX": f"sb-{uuid.uuid4().hex[:8]}",
            "BIGQUERY_EMULATOR_HOST": hung_endpoint,
            "GOOGLE_CLOUD_PROJECT": "switchboard-dev",
            "BIGQUERY_DEFAULT_DATASET": "switchboard_sample",
            "BIGQUERY_API_DEADLINE_SECONDS": str(API_DEADLINE_SECONDS),
            "BIGQUERY_API_TIMEOUT_SECONDS": "0.5",
        },
    )
    stack.start()
    yield stack
    stack.stop()


def _timed(call: Any, *args: Any, **kwargs: Any) -> requests.Response:
    started = time.monotonic()
    response: requests.Response = call(*args, timeout=30, **kwargs)
    elapsed = time.monotonic() - started
    assert elapsed < ANSWER_WITHIN_SECONDS, f"{args[0]} took {elapsed:.1f} s"
    return response


def _wait_for_query_worker(url: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        workers = requests.get(f"{url}/api/workers", timeout=10).json().get("workers", [])
        if any("bigquery.query" in worker.get("tasks", []) for worker in workers):
            return
        assert time.monotonic() < deadline, f"no worker registered bigquery.query: {workers}"
        time.sleep(0.05)


def _timestamp(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_a_query_is_retried_with_backoff_then_fails_and_no_call_hangs(outage_stack: Stack) -> None:
    url = outage_stack.gateway_url
    _wait_for_query_worker(url)
    http = requests.Session()
    submitted = _timed(http.post, f"{url}/api/bigquery", json={"sql": "SELECT 1 AS one"})
    assert submitted.status_code == 200, submitted.text
    job_id = submitted.json()["jobId"]

    dry_run = _timed(http.post, f"{url}/api/bigquery", json={"sql": "SELECT 1 AS one", "dryRun": True})
    assert dry_run.status_code == 503, dry_run.text
    assert "BigQuery" in dry_run.json()["message"]

    report = _timed(http.get, f"{url}/api/test-connection", auth=outage_stack.admin_auth).json()
    bigquery = next(check for check in report["checks"] if check["name"] == "bigquery")
    assert bigquery["status"] == "CHECK_STATUS_FAILED"

    # Two attempts (the bigquery queue's policy), the second after the fixed 10 s backoff.
    deadline = time.monotonic() + 60
    while True:
        job = _timed(http.get, f"{url}/api/job/status", params={"id": job_id}).json()
        results = _timed(http.get, f"{url}/api/bigquery/results", params={"job_id": job_id})
        assert results.status_code == 200, results.text
        if job["state"] == "JOB_STATE_FAILED":
            break
        assert time.monotonic() < deadline, f"the query did not fail within 60 s: {job}"
        time.sleep(0.2)
    assert results.json()["state"] == "QUERY_STATE_FAILED"
    assert job["attemptsMade"] == 2
    first, second = job["attemptErrors"]
    assert first["type"] == second["type"] == "BigQueryUnavailable"
    assert first["retryable"] is True
    gap = _timestamp(second["startedAt"]) - _timestamp(first["occurredAt"])
    assert gap >= dt.timedelta(seconds=9.5), f"retried after {gap}, not after the queue's backoff"
    assert "did not answer in time" in second["message"] or "could not be reached" in second["message"]


def test_results_of_a_query_before_it_ran_say_its_state_without_rows(outage_stack: Stack) -> None:
    url = outage_stack.gateway_url
    _wait_for_query_worker(url)
    job_id = requests.post(f"{url}/api/bigquery", json={"sql": "SELECT 2 AS two"}, timeout=10).json()["jobId"]
    page = _timed(requests.get, f"{url}/api/bigquery/results", params={"job_id": job_id}).json()
    assert page["state"] in {"QUERY_STATE_PENDING", "QUERY_STATE_RUNNING"}
    assert page.get("rows", []) == []


def test_cancelling_a_running_query_ends_it_cancelled(outage_stack: Stack) -> None:
    """A query stuck on BigQuery: the cancellation reaches its task, and the job ends CANCELLED."""
    url = outage_stack.gateway_url
    _wait_for_query_worker(url)
    job_id = requests.post(f"{url}/api/bigquery", json={"sql": "SELECT 3 AS three"}, timeout=10).json()[
        "jobId"
    ]
    deadline = time.monotonic() + 30
    while requests.get(f"{url}/api/job/status", params={"id": job_id}, timeout=10).json()["state"] != (
        "JOB_STATE_ACTIVE"
    ):
        assert time.monotonic() < deadline, "the query never started"
        time.sleep(0.02)
    cancelled = _timed(requests.post, f"{url}/api/bigquery/cancel", json={"jobId": job_id})
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["state"] in {"QUERY_STATE_RUNNING", "QUERY_STATE_CANCELLED"}
    deadline = time.monotonic() + 30
    while True:
        state = requests.get(f"{url}/api/bigquery/results", params={"job_id": job_id}, timeout=10).json()[
            "state"
        ]
        if state == "QUERY_STATE_CANCELLED":
            break
        assert state in {"QUERY_STATE_RUNNING", "QUERY_STATE_PENDING"}, state
        assert time.monotonic() < deadline, "the running query was not cancelled"
        time.sleep(0.05)
    job = requests.get(f"{url}/api/job/status", params={"id": job_id}, timeout=10).json()
    assert job["state"] == "JOB_STATE_CANCELLED"
    assert job["attemptsMade"] <= 1, "not retried after the cancellation"
