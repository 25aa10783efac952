"""Envoy's rate limiting on /api and native gRPC: 429 JSON with the headers, per client and per address,
the limiter's own checks left alone, failing open, and the per-instance backstop.

The module's stack has its own key prefixes because its tests tighten the gateway's rules (each puts them
back). A test that stops a service builds a stack of its own, so no test depends on another's order.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import requests
from google.protobuf import duration_pb2

from devstack.ports import free_port
from devstack.redis import RedisServer
from devstack.stack import Stack
from switchboard.jobs.v1 import jobs_pb2, jobs_pb2_grpc
from switchboard.ratelimit.v1 import ratelimit_pb2, ratelimit_pb2_grpc


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
        # The tightest quota first (5 per 10 s, stated per minute), then every quota that applied.
        assert allowed.headers["x-ratelimit-limit"].startswith('30, 30;w=60;name="api"')
        assert 'name="api-address"' in allowed.headers["x-ratelimit-limit"]
        assert denied.headers["x-ratelimit-remaining"] == "0"
        assert int(denied.headers["x-ratelimit-reset"]) > 0
        assert int(denied.headers["retry-after"]) == 2, "one request every 2 s; rounded up to whole seconds"
        assert denied.headers["content-type"] == "application/json"
        body = denied.json()
        assert body["code"] == 8
        assert "Retry-After" in body["message"]
        assert other.status_code == 200, "each client has its own allowance"
    finally:
        _put_rule(limited_stack, "api", 100, 1, burst=100)


def test_rotating_api_keys_meets_the_per_address_ceiling(limited_stack: Stack) -> None:
    """A fresh x-api-key per request used to get a fresh allowance each time."""
    url = limited_stack.gateway_url
    _put_rule(limited_stack, "api-address", 5, 86_400, fixed_window=True)  # no window boundary inside
    try:
        with requests.Session() as client:
            answers = [
                client.get(f"{url}/api/queues", headers={"x-api-key": f"rotated-{index}"}, timeout=10)
                for index in range(8)
            ]
        assert [a.status_code for a in answers] == [200] * 5 + [429] * 3
        assert answers[-1].json()["code"] == 8
    finally:
        _put_rule(limited_stack, "api-address", 1000, 1, burst=1000)


def test_checks_through_the_gateway_meet_the_per_address_ceiling_they_charge_themselves(
    limited_stack: Stack,
) -> None:
    """The check routes ask the gateway's rate-limit filter nothing (one call to the service per check,
    not two): the check charges its caller's address ceiling itself, before the rule it checks."""
    url = limited_stack.gateway_url
    # A day less a second: windows apart from the rotating-keys test's (same rule, a day), whose count stays.
    _put_rule(limited_stack, "api-address", 5, 86_399, fixed_window=True)
    _put_rule(limited_stack, "own-users", 100, 86_400, fixed_window=True)
    try:
        with requests.Session() as client:
            checks = [
                client.post(
                    f"{url}/api/rate-limits/check", json={"rule": "own-users", "key": "user-9"}, timeout=10
                )
                for _ in range(5)
            ]
            denied = client.post(
                f"{url}/api/rate-limits/check", json={"rule": "own-users", "key": "user-9"}, timeout=10
            )
        with (
            grpc.insecure_channel(f"127.0.0.1:{limited_stack.gateway_port}") as channel,
            pytest.raises(grpc.RpcError) as native,
        ):
            ratelimit_pb2_grpc.RateLimitServiceStub(channel).CheckRateLimit(
                ratelimit_pb2.CheckRateLimitRequest(rule="own-users", key="user-9"), timeout=10
            )
        with grpc.insecure_channel(limited_stack.services["ratelimit"].address) as channel:
            usage = ratelimit_pb2_grpc.RateLimitServiceStub(channel).GetUsage(
                ratelimit_pb2.GetUsageRequest(rule="own-users", key="user-9"), timeout=10
            )
        assert [c.status_code for c in checks] == [200] * 5
        assert [c.json()["remaining"] for c in checks] == [str(n) for n in range(99, 94, -1)]
        assert denied.status_code == 429, denied.text
        assert denied.headers["content-type"] == "application/json"
        assert denied.json()["code"] == 8 and "Retry-After" in denied.json()["message"]
        assert int(denied.headers["retry-after"]) >= 1, "until the window ends, in whole seconds"
        assert native.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert usage.remaining == 95, "the refused checks charged the rule nothing"
    finally:
        _put_rule(limited_stack, "api-address", 1000, 1, burst=1000)
        _delete_rule(limited_stack, "own-users")


def test_native_grpc_calls_through_the_gateway_are_rate_limited(limited_stack: Stack) -> None:
    """They used to pass the gateway unlimited."""
    _put_rule(limited_stack, "api", 5, 86_400, fixed_window=True)  # no window boundary inside
    try:
        codes = []
        with grpc.insecure_channel(f"127.0.0.1:{limited_stack.gateway_port}") as channel:
            stub = jobs_pb2_grpc.JobsServiceStub(channel)
            for _ in range(8):
                try:
                    stub.ListQueues(
                        jobs_pb2.ListQueuesRequest(), metadata=[("x-api-key", "grpc-client")], timeout=10
                    )
                    codes.append(grpc.StatusCode.OK)
                except grpc.RpcError as error:
                    codes.append(error.code())
        assert codes == [grpc.StatusCode.OK] * 5 + [grpc.StatusCode.RESOURCE_EXHAUSTED] * 3
    finally:
        _put_rule(limited_stack, "api", 100, 1, burst=100)


def test_the_limiter_does_not_limit_itself(limited_stack: Stack) -> None:
    """An application checks its own users' limits through the gateway: those checks are verdicts of its
    rule, never the gateway's 429 (only the per-address ceiling bounds them)."""
    url = limited_stack.gateway_url
    # Day-long fixed windows: a window boundary inside the test would reset the counts it checks.
    _put_rule(limited_stack, "api", 5, 86_400, fixed_window=True)
    _put_rule(limited_stack, "own-users", 100, 86_400, fixed_window=True)
    try:
        with requests.Session() as client:
            app = {"x-api-key": "self-checking-app"}
            checks = [
                client.post(
                    f"{url}/api/rate-limits/check",
                    json={"rule": "own-users", "key": "user-1"},
                    headers=app,
                    timeout=10,
                )
                for _ in range(300)
            ]
            usage = client.get(
                f"{url}/api/rate-limits/usage",
                params={"rule": "own-users", "key": "user-1"},
                headers=app,
                timeout=10,
            )
            elsewhere = [client.get(f"{url}/api/queues", headers=app, timeout=10) for _ in range(6)]
        assert [c.status_code for c in checks] == [200] * 300, "no gateway 429 among the checks"
        verdicts = [c.json()["allowed"] for c in checks]
        assert verdicts == [True] * 100 + [False] * 200, "the rule's own verdicts"
        assert (usage.status_code, usage.json()["remaining"]) == (200, "0")
        assert [a.status_code for a in elsewhere] == [200] * 5 + [429], "the rest of the API stays limited"
    finally:
        _put_rule(limited_stack, "api", 100, 1, burst=100)
        _delete_rule(limited_stack, "own-users")


def test_requests_pass_when_the_rate_limit_service_is_down_within_the_backstop(
    redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Failing open lets requests through without a verdict; the per-instance backstop still refuses a
    client's overload (429) instead of waving it through, and other clients keep their own allowance."""
    monkeypatch.setenv("GATEWAY_BACKSTOP_CLIENT_REQUESTS_PER_SECOND", "10")
    stack = _stack_of_its_own(tmp_path, redis_server)
    stack.start()
    try:
        url = stack.gateway_url
        stack.services["ratelimit"].stop()
        with requests.Session() as client:
            answers = [client.get(f"{url}/api/test-connection", timeout=10) for _ in range(5)]
            assert [a.status_code for a in answers] == [200] * 5, "fail open: no hang, no 429, no 5xx"
            assert all("x-ratelimit-limit" not in a.headers for a in answers)
            # Far more than 10 a second from one client: its bucket runs dry.
            noisy = {"x-api-key": "noisy"}
            overload = [client.get(f"{url}/api/queues", headers=noisy, timeout=10) for _ in range(60)]
            quiet = client.get(f"{url}/api/queues", headers={"x-api-key": "quiet"}, timeout=10)
        refused = [a for a in overload if a.status_code == 429]
        assert refused, [a.status_code for a in overload]
        assert {a.status_code for a in overload} <= {200, 429}
        assert refused[0].json()["code"] == 8
        assert refused[0].headers["retry-after"] == "1"
        assert quiet.status_code == 200, "a bucket per client"
    finally:
        stack.stop()


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


def _put_rule(
    stack: Stack, name: str, limit: int, period_seconds: int, *, burst: int = 0, fixed_window: bool = False
) -> None:
    """Straight to the rate-limit service: a tightened rule must not stop the test from loosening it.

    Tests tighten a rule as a fixed window: its counters are apart from the GCRA ones the loosened rule
    uses again, so a test's spent allowance does not carry over into the next test."""
    rule = ratelimit_pb2.Rule(
        limit=limit,
        burst=burst,
        period=duration_pb2.Duration(seconds=period_seconds),
        algorithm=ratelimit_pb2.ALGORITHM_FIXED_WINDOW if fixed_window else ratelimit_pb2.ALGORITHM_GCRA,
    )
    with grpc.insecure_channel(stack.services["ratelimit"].address) as channel:
        ratelimit_pb2_grpc.RateLimitServiceStub(channel).PutRule(
            ratelimit_pb2.PutRuleRequest(name=name, rule=rule), metadata=stack.admin_metadata, timeout=10
        )


def _delete_rule(stack: Stack, name: str) -> None:
    with grpc.insecure_channel(stack.services["ratelimit"].address) as channel:
        ratelimit_pb2_grpc.RateLimitServiceStub(channel).DeleteRule(
            ratelimit_pb2.DeleteRuleRequest(name=name), metadata=stack.admin_metadata, timeout=10
        )


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
