"""Envoy's global rate limiting on /api: 429 JSON with the headers, per client, and failing open.

This module runs its own stack (its own key prefixes) because it tightens the `api` rule and kills the
rate-limit service.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from devstack.ports import free_port
from devstack.redis import RedisServer
from devstack.stack import Stack


@pytest.fixture(scope="module")
def limited_stack(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = _stack_of_its_own(Path(tmp_path_factory.mktemp("limited-stack")), redis_server)
    stack.start()
    yield stack
    stack.stop()


def test_rules_are_managed_over_rest(limited_stack: Stack) -> None:
    url = limited_stack.gateway_url
    put = requests.put(
        f"{url}/api/rate-limits/reports",
        json={"limit": 3, "period": "30s", "algorithm": "ALGORITHM_FIXED_WINDOW"},
        auth=limited_stack.admin_auth,
        timeout=10,
    )
    assert put.status_code == 200, put.text
    assert put.json()["period"] == "30s"
    names = {rule["name"] for rule in requests.get(f"{url}/api/rate-limits", timeout=10).json()["rules"]}
    assert {"api", "queue-ratelimit", "reports"} <= names
    check = requests.post(
        f"{url}/api/rate-limits/check", json={"rule": "reports", "key": "u1"}, timeout=10
    ).json()
    assert (check["allowed"], check["remaining"]) == (True, "2")
    usage = requests.get(
        f"{url}/api/rate-limits/usage", params={"rule": "reports", "key": "u1"}, timeout=10
    ).json()
    assert usage["remaining"] == "2"
    admin = limited_stack.admin_auth
    bad = requests.put(
        f"{url}/api/rate-limits/reports", json={"limit": 3, "period": "0.1s"}, auth=admin, timeout=10
    )
    assert bad.status_code == 400
    assert "between 1s and 1d" in bad.json()["message"]
    assert requests.delete(f"{url}/api/rate-limits/reports", auth=admin, timeout=10).status_code == 200
    assert requests.delete(f"{url}/api/rate-limits/reports", auth=admin, timeout=10).status_code == 404


def test_a_burst_over_the_api_rule_gets_429_json_with_the_headers(limited_stack: Stack) -> None:
    url = limited_stack.gateway_url
    tightened = requests.put(
        f"{url}/api/rate-limits/api",
        json={"limit": 5, "period": "10s"},
        auth=limited_stack.admin_auth,
        timeout=10,
    )
    assert tightened.status_code == 200
    try:
        with requests.Session() as client:
            answers = [
                client.get(f"{url}/api/queues", headers={"x-api-key": "client-a"}, timeout=10)
                for _ in range(8)
            ]
            other = client.get(f"{url}/api/queues", headers={"x-api-key": "client-b"}, timeout=10)
        assert [a.status_code for a in answers] == [200] * 5 + [429] * 3
        allowed, denied = answers[0], answers[-1]
        assert allowed.headers["x-ratelimit-remaining"] == "4"
        assert allowed.headers["x-ratelimit-limit"] == '30, 30;w=60;name="api"', "5 per 10 s, per minute"
        assert denied.headers["x-ratelimit-remaining"] == "0"
        assert int(denied.headers["x-ratelimit-reset"]) > 0
        assert int(denied.headers["retry-after"]) == 2, "one request every 2 s; rounded up to whole seconds"
        assert denied.headers["content-type"] == "application/json"
        body = denied.json()
        assert body["code"] == 8
        assert "Retry-After" in body["message"]
        assert other.status_code == 200, "each client has its own allowance"
    finally:
        requests.put(
            f"{url}/api/rate-limits/api",
            json={"limit": 100, "period": "1s", "burst": 100},
            auth=limited_stack.admin_auth,
            timeout=10,
        )


def test_requests_pass_when_the_rate_limit_service_is_down(limited_stack: Stack) -> None:
    url = limited_stack.gateway_url
    limited_stack.services["ratelimit"].stop()
    answers = [requests.get(f"{url}/api/test-connection", timeout=10) for _ in range(5)]
    assert [a.status_code for a in answers] == [200] * 5, "fail open: no hang, no 429, no 5xx"
    assert all("x-ratelimit-limit" not in a.headers for a in answers)


def test_failing_closed_when_so_configured(
    redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_RATELIMIT_FAIL_CLOSED", "true")
    stack = _stack_of_its_own(tmp_path, redis_server)
    stack.start()
    try:
        assert requests.get(f"{stack.gateway_url}/api/queues", timeout=10).status_code == 200
        stack.services["ratelimit"].stop()
        denied = requests.get(f"{stack.gateway_url}/api/queues", timeout=10)
        assert denied.status_code == 503
        assert denied.json()["code"] == 14
    finally:
        stack.stop()


def _stack_of_its_own(run_dir: Path, redis_server: RedisServer) -> Stack:
    """A stack without workers whose rules and jobs live under key prefixes no other test uses."""
    suffix = uuid.uuid4().hex[:8]
    return Stack(
        run_dir,
        redis_host="127.0.0.1",
        redis_port=redis_server.port,
        gateway_port=free_port(),
        env={"RATELIMIT_KEY_PREFIX": f"rl-{suffix}", "JOBS_KEY_PREFIX": f"sb-{suffix}"},
        workers=0,
    )
