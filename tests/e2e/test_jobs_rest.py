"""Jobs through Envoy as a REST client sees them: submit, poll the status, read the result."""

from __future__ import annotations

import time
import uuid

import requests

from devstack.stack import Stack


def _poll_status(
    http: requests.Session, url: str, job_id: str, state: str, timeout: float
) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        status: dict[str, object] = http.get(
            f"{url}/api/job/status", params={"id": job_id}, timeout=10
        ).json()
        if status["state"] == state or time.monotonic() > deadline:
            return status
        time.sleep(0.02)


def test_submit_echo_poll_status_read_result(stack: Stack, http: requests.Session) -> None:
    submitted = http.post(
        f"{stack.gateway_url}/api/job",
        json={"queue": "analytics", "task": "diagnostics.echo", "payload": {"x": 1}},
        timeout=10,
    )
    assert submitted.status_code == 200, submitted.text
    job = submitted.json()
    assert job["queue"] == "analytics"
    assert job["task"] == "diagnostics.echo"
    assert job["payload"] == {"x": 1}

    status = _poll_status(http, stack.gateway_url, job["id"], "JOB_STATE_COMPLETED", timeout=15)
    assert status["state"] == "JOB_STATE_COMPLETED", status
    assert status["attemptsMade"] == 1

    result = http.get(f"{stack.gateway_url}/api/job/result", params={"id": job["id"]}, timeout=10).json()
    assert result == {"id": job["id"], "state": "JOB_STATE_COMPLETED", "ready": True, "result": {"x": 1}}


def test_rest_errors_are_json_with_what_to_do(stack: Stack, http: requests.Session) -> None:
    bad_queue = http.post(f"{stack.gateway_url}/api/job", json={"queue": "mail", "task": "x"}, timeout=10)
    assert bad_queue.status_code == 400
    body = bad_queue.json()
    assert "use one of: analytics, bigquery, ratelimit" in body["message"]
    assert any(d.get("fieldViolations") for d in body["details"]), "the field violation reaches REST clients"

    missing = http.get(f"{stack.gateway_url}/api/job/status", params={"id": "nope"}, timeout=10)
    assert missing.status_code == 404
    assert missing.json()["code"] == 5


def test_queues_and_listing_over_rest(stack: Stack, http: requests.Session) -> None:
    queues = http.get(f"{stack.gateway_url}/api/queues", timeout=10).json()["queues"]
    assert {queue["name"] for queue in queues} == {"analytics", "bigquery", "ratelimit"}
    batch = uuid.uuid4().hex[:8]
    ids = [f"list-{batch}-{index}" for index in range(3)]
    for job_id in ids:
        submitted = http.post(
            f"{stack.gateway_url}/api/job",
            json={"queue": "analytics", "task": "diagnostics.echo", "payload": {}, "jobId": job_id},
            timeout=10,
        )
        assert submitted.status_code == 200, submitted.text
    listed = http.get(
        f"{stack.gateway_url}/api/job",
        params={"queue": "analytics", "pageSize": "2", "search": batch},
        timeout=10,
    )
    assert listed.status_code == 200
    first = listed.json()
    assert [job["id"] for job in first["jobs"]] == [ids[2], ids[1]], "newest first, two a page"
    rest = http.get(
        f"{stack.gateway_url}/api/job",
        params={"queue": "analytics", "pageSize": "2", "search": batch, "pageToken": first["nextPageToken"]},
        timeout=10,
    ).json()
    assert [job["id"] for job in rest["jobs"]] == [ids[0]]
