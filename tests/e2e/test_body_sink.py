"""A body over a route's limit is answered 413 JSON to every client, including those that write their
whole body before they read (Python's urllib), through the real gateway and its body sink."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import requests

from devstack.stack import Stack

DEFAULT_LIMIT_BYTES = 1_048_576 + 65_536
BIG_BODY_BYTES = 40_000_000
"""Far past the sockets' buffers: Envoy must read it all, or urllib's write fails with a reset."""


def _job_body(payload_bytes: int) -> bytes:
    return json.dumps(
        {"queue": "analytics", "task": "diagnostics.echo", "payload": {"x": "a" * payload_bytes}}
    ).encode()


def _assert_names_the_limit(status: dict[str, Any], limit: str) -> None:
    assert status["code"] == 3, status
    assert f"limit of {limit}" in str(status["message"])
    (detail,) = status["details"]
    assert detail["reason"] == "REQUEST_TOO_LARGE"
    assert detail["domain"] == "gateway.switchboard"
    assert detail["metadata"]["limit"] == limit
    assert detail["metadata"]["request_id"], "the request id, to find the request in the gateway's log"


def test_urllib_posting_40_mb_reads_the_413_not_a_reset(stack: Stack) -> None:
    """It used to fail with ConnectionResetError/BrokenPipeError (a URLError) while still writing."""
    request = urllib.request.Request(  # noqa: S310 - the test's own gateway
        f"{stack.gateway_url}/api/job",
        data=_job_body(BIG_BODY_BYTES),
        headers={"content-type": "application/json"},
        method="POST",
    )
    try:
        urllib.request.urlopen(request, timeout=60)  # noqa: S310
    except urllib.error.HTTPError as answer:
        assert answer.code == 413
        assert answer.headers["content-type"].startswith("application/json")
        _assert_names_the_limit(json.loads(answer.read()), "1 MiB 64 KiB")
    else:
        raise AssertionError("a 40 MB job was accepted")


def test_requests_posting_40_mb_reads_the_same_413(stack: Stack) -> None:
    answer = requests.post(
        f"{stack.gateway_url}/api/job",
        data=_job_body(BIG_BODY_BYTES),
        headers={"content-type": "application/json"},
        timeout=60,
    )
    assert answer.status_code == 413, answer.text[:300]
    _assert_names_the_limit(answer.json(), "1 MiB 64 KiB")


def test_analytics_bodies_are_measured_against_their_own_limit(stack: Stack) -> None:
    """Between the default and the analytics limit a body reaches the service (which answers 400 over
    its own per-call limit); past it, the gateway's 413 names the analytics limit."""

    def ingest(property_bytes: int) -> requests.Response:
        events = {"events": [{"name": "signup", "properties": {"blob": "b" * property_bytes}}]}
        return requests.post(f"{stack.gateway_url}/api/analytics", json=events, timeout=60)

    reached = ingest(3_000_000)
    assert reached.status_code == 400, "reaches the service, which holds a call to its own 1 MiB"
    assert "limit" in reached.json()["message"]
    too_large = ingest(8_000_000)
    assert too_large.status_code == 413, too_large.text[:300]
    _assert_names_the_limit(too_large.json(), "4 MiB 64 KiB")


def test_a_body_just_under_the_limit_still_reaches_the_service(stack: Stack) -> None:
    """Exactly the limit (JSON whitespace makes up the size, the payload stays under the jobs' own)."""
    job = _job_body(1_000_000)
    body = job + b" " * (DEFAULT_LIMIT_BYTES - len(job))
    request = urllib.request.Request(  # noqa: S310 - the test's own gateway
        f"{stack.gateway_url}/api/job", data=body, headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
        assert answer.status == 200
        assert json.loads(answer.read())["id"]
