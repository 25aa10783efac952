"""Access control end to end: admin operations, keys and scopes, through Envoy and straight on the ports.

The open stack (`stack`, keys not required) is shared with the other e2e tests; the locked one
(`SWITCHBOARD_REQUIRE_API_KEYS=true`) is this module's own.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import requests
from google.api import annotations_pb2
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from devstack.bigquery_emulator import BigQueryEmulator
from devstack.ports import free_port
from devstack.redis import RedisServer
from devstack.stack import DESCRIPTOR_PATH, Stack
from services.access.credentials import basic_header
from services.access.guard import API_KEY_HEADER as API_KEY
from services.access.routes import RouteMap
from services.access.scopes import REQUIREMENTS, Scope
from switchboard.jobs.v1 import jobs_pb2, jobs_pb2_grpc
from switchboard.ratelimit.v1 import ratelimit_pb2, ratelimit_pb2_grpc

RULE = {"limit": 10, "period": "60s"}


def _admin_calls(name: str) -> list[tuple[str, str, dict[str, Any] | None, int]]:
    """(method, path, body, status with admin credentials) of every admin operation the gateway serves;
    `test_the_admin_calls_cover_every_admin_rpc` keeps the list whole."""
    no_such = {"id": f"no-such-job-{name}"}
    return [
        ("PUT", f"/api/rate-limits/{name}", RULE, 200),
        ("DELETE", f"/api/rate-limits/{name}", None, 200),
        ("POST", "/api/queues/bigquery/pause", {}, 200),
        ("POST", "/api/queues/bigquery/resume", {}, 200),
        ("POST", "/api/queues/bigquery/clean", {"state": "JOB_STATE_COMPLETED"}, 200),
        ("POST", "/api/job/remove", no_such, 404),
        ("POST", "/api/job/promote", no_such, 404),
        ("POST", "/api/job/duplicate", no_such, 404),
        ("POST", "/api/job/bulk", {"action": "BULK_ACTION_REMOVE", "ids": [no_such["id"]]}, 200),
        ("GET", "/api/settings", None, 200),
        # A change to what it already is: admitted, and nothing is written.
        ("PATCH", "/api/settings", {"settings": {"diagnosticsEnabled": True},
                                    "updateMask": "diagnosticsEnabled"}, 200),
        ("GET", "/api/settings/history", None, 200),
        ("POST", "/api/keys", {"name": name, "scopes": ["jobs:read"]}, 200),
        ("GET", "/api/keys", None, 200),
        ("DELETE", f"/api/keys/{name}", None, 200),
        ("GET", "/api/audit", None, 200),
    ]  # fmt: skip


def test_the_admin_calls_cover_every_admin_rpc() -> None:
    routes = RouteMap.from_descriptor_set(DESCRIPTOR_PATH.read_bytes())
    covered = set()
    for method, path, _, _ in _admin_calls("x"):
        found = routes.match(method, path)
        assert found is not None, (method, path)
        covered.add(found.method)
    admin = {rpc for rpc, need in REQUIREMENTS.items() if need is Scope.ADMIN}
    assert sorted((admin & _rpcs_with_a_rest_path()) - covered) == [], "add it to _admin_calls"


def _rpcs_with_a_rest_path() -> set[str]:
    files = descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTOR_PATH.read_bytes())
    return {
        f"/{file.package}.{service.name}/{method.name}"
        for file in files.file
        for service in file.service
        for method in service.method
        if method.options.HasExtension(annotations_pb2.http)
    }


def _call(stack: Stack, method: str, path: str, body: object, **kwargs: Any) -> requests.Response:
    return requests.request(method, stack.gateway_url + path, json=body, timeout=10, **kwargs)


def test_every_admin_operation_through_envoy_needs_the_admin_password(stack: Stack) -> None:
    name = f"acc-{uuid.uuid4().hex[:8]}"
    for method, path, body, admitted_status in _admin_calls(name):
        anonymous = _call(stack, method, path, body)
        assert anonymous.status_code == 401, (method, path, anonymous.text)
        assert anonymous.headers["content-type"] == "application/json"
        assert anonymous.json()["code"] == 16
        assert "admin credentials" in anonymous.json()["message"]
        # Refused by Envoy's check, never reaching a service: Envoy's own reply, with the challenge.
        assert anonymous.json()["details"][0]["domain"] == "gateway.switchboard", anonymous.text
        assert anonymous.headers["www-authenticate"] == 'Basic realm="Switchboard"'
        assert "x-envoy-upstream-service-time" not in anonymous.headers
        wrong = _call(stack, method, path, body, auth=(stack.admin_user, stack.admin_password + "x"))
        assert wrong.status_code == 401, (method, path, wrong.text)
        assert "wrong admin user or password" in wrong.json()["message"]
        admitted = _call(stack, method, path, body, auth=stack.admin_auth)
        assert admitted.status_code == admitted_status, (method, path, admitted.text)


def test_creating_a_key_shows_the_secret_once_and_listing_never(stack: Stack) -> None:
    name = f"acc-{uuid.uuid4().hex[:8]}"
    created = _call(stack, "POST", "/api/keys", {"name": name, "scopes": ["jobs:read", "admin"]},
                    auth=stack.admin_auth).json()  # fmt: skip
    assert created["key"]["name"] == name
    assert sorted(created["key"]["scopes"]) == ["admin", "jobs:read"]
    assert created["key"]["createTime"].endswith("Z")
    listed = _call(stack, "GET", "/api/keys", None, auth=stack.admin_auth)
    assert name in listed.text and created["secret"] not in listed.text
    # An admin-scoped key is an admin: it may pause a queue.
    paused = _call(stack, "POST", "/api/queues/bigquery/resume", {}, headers={"x-api-key": created["secret"]})
    assert paused.status_code == 200, paused.text
    bad = _call(
        stack, "POST", "/api/keys", {"name": "Bad Name!", "scopes": ["jobs:read"]}, auth=stack.admin_auth
    )
    assert bad.status_code == 400 and "lower-case" in bad.json()["message"]
    _call(stack, "DELETE", f"/api/keys/{name}", None, auth=stack.admin_auth)


_FORGED = (
    ("x-principal", "admin:admin"),
    ("x-forwarded-user", "admin"),
    ("x-authenticated-user", "admin"),
    ("x-switchboard-service-key", "a-guess-of-the-deployment-secret-0000"),
    ("authorization", basic_header("admin", "not-the-password-at-all")),
)


def test_admin_rpcs_straight_on_the_service_ports_are_refused_without_real_credentials(stack: Stack) -> None:
    with grpc.insecure_channel(stack.services["jobs"].address) as channel:
        jobs = jobs_pb2_grpc.JobsServiceStub(channel)
        pause = jobs_pb2.PauseQueueRequest(name="bigquery")
        with pytest.raises(grpc.RpcError) as refused:
            jobs.PauseQueue(pause, timeout=5)
        assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED
        for forged in _FORGED:
            with pytest.raises(grpc.RpcError) as refused:
                jobs.PauseQueue(pause, metadata=(forged,), timeout=5)
            assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED, forged
        with pytest.raises(grpc.RpcError) as refused:
            jobs.PauseQueue(pause, metadata=(("x-switchboard-service-key", stack.service_key),), timeout=5)
        assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED, "services do not administer"
        assert jobs.ResumeQueue(jobs_pb2.ResumeQueueRequest(name="bigquery"), metadata=stack.admin_metadata,
                                timeout=5).name == "bigquery"  # fmt: skip
    with grpc.insecure_channel(stack.services["ratelimit"].address) as channel:
        limits = ratelimit_pb2_grpc.RateLimitServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            limits.DeleteRule(ratelimit_pb2.DeleteRuleRequest(name="api"), timeout=5)
        assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED
        assert limits.ListRules(ratelimit_pb2.ListRulesRequest(), timeout=5).rules, "reads stay open"


_SERVICE_OF_PACKAGE = {"switchboard.jobs.v1": "jobs", "switchboard.ratelimit.v1": "ratelimit",
                       "switchboard.admin.v1": "admin"}  # fmt: skip


def _service_of(rpc: str) -> str:
    """The stack's service that serves `rpc` (`/switchboard.jobs.v1.JobsService/PauseQueue` → jobs)."""
    package = rpc.strip("/").split("/")[0].rsplit(".", 1)[0]
    return _SERVICE_OF_PACKAGE.get(package, "")


def test_every_admin_rpc_straight_on_its_port_refuses_no_wrong_revoked_and_wrong_scope_credentials(
    stack: Stack,
) -> None:
    """Each admin RPC, called as a raw gRPC method on its service's own port (not through the gateway),
    with an empty request: the guard answers before the request is read."""
    every_but_admin = ["jobs:read", "jobs:write", "ratelimit:check", "bigquery:query", "analytics:read"]
    reader_key = {"name": f"port-{uuid.uuid4().hex[:8]}", "scopes": every_but_admin}
    reader = _call(stack, "POST", "/api/keys", reader_key, auth=stack.admin_auth)
    assert reader.status_code == 200, reader.text
    revoked = _call(stack, "POST", "/api/keys", {"name": f"gone-{uuid.uuid4().hex[:8]}", "scopes": ["admin"]},
                    auth=stack.admin_auth).json()  # fmt: skip
    assert _call(stack, "DELETE", f"/api/keys/{revoked['key']['name']}", None, auth=stack.admin_auth).ok
    attempts = {
        "none": ((), grpc.StatusCode.UNAUTHENTICATED),
        "wrong password": (
            (("authorization", basic_header(stack.admin_user, stack.admin_password + "x")),),
            grpc.StatusCode.UNAUTHENTICATED,
        ),
        "revoked admin key": (((API_KEY, revoked["secret"]),), grpc.StatusCode.UNAUTHENTICATED),
        "every scope but admin": (((API_KEY, reader.json()["secret"]),), grpc.StatusCode.PERMISSION_DENIED),
    }
    admin_rpcs = sorted(rpc for rpc, need in REQUIREMENTS.items() if need is Scope.ADMIN and _service_of(rpc))
    assert len(admin_rpcs) >= 15
    deadline = time.monotonic() + 2  # the new key reaches every process within 2 s
    for rpc in admin_rpcs:
        with grpc.insecure_channel(stack.services[_service_of(rpc)].address) as channel:
            call = channel.unary_unary(rpc)
            for what, (metadata, expected) in attempts.items():
                while True:
                    with pytest.raises(grpc.RpcError) as refused:
                        call(b"", metadata=metadata, timeout=5)
                    code = refused.value.code()
                    if code is expected or code is not grpc.StatusCode.UNAUTHENTICATED:
                        break
                    assert time.monotonic() < deadline, (rpc, what, "the key is not known within 2 s")
                    time.sleep(0.05)
                assert code is expected, (rpc, what, refused.value.details())


def test_denied_attempts_and_done_actions_are_in_the_audit(stack: Stack) -> None:
    queue_action = _call(stack, "POST", "/api/queues/analytics/clean", {"state": "JOB_STATE_FAILED"},
                         headers={"x-forwarded-for": "198.51.100.7"})  # fmt: skip
    assert queue_action.status_code == 401
    assert _call(stack, "POST", "/api/queues/analytics/resume", {}, auth=stack.admin_auth).status_code == 200
    entries = _call(stack, "GET", "/api/audit", None, params={"page_size": 50}, auth=stack.admin_auth).json()
    seen = [
        (e["operation"].rsplit("/", 1)[1], e["target"], e["outcome"], e["principal"])
        for e in entries["entries"]
    ]
    assert ("ResumeQueue", "analytics", "allowed", f"admin:{stack.admin_user}") in seen
    denied = next(
        e for e in entries["entries"] if e["operation"].endswith("/CleanQueue") and e["outcome"] == "denied"
    )
    assert denied["target"] == "analytics"
    assert denied["principal"].startswith("anonymous:")
    assert "admin credentials" in denied["detail"]


def test_an_allowed_action_records_what_it_asked_and_never_a_secret(stack: Stack) -> None:
    name = f"audited-{uuid.uuid4().hex[:8]}"
    created = _call(
        stack, "POST", "/api/keys", {"name": name, "scopes": ["jobs:read"]}, auth=stack.admin_auth
    )
    assert created.status_code == 200, created.text
    secret = created.json()["secret"]
    asked = {"state": "JOB_STATE_COMPLETED", "limit": 7}
    cleaned = _call(stack, "POST", "/api/queues/ratelimit/clean", asked, auth=stack.admin_auth)
    assert cleaned.status_code == 200, cleaned.text
    entries = _call(stack, "GET", "/api/audit", None, params={"page_size": 50}, auth=stack.admin_auth).json()
    create = next(
        e for e in entries["entries"] if e["operation"].endswith("/CreateKey") and e["target"] == name
    )
    assert "jobs:read" in create["detail"] and secret not in create["detail"]
    clean = next(
        e for e in entries["entries"] if e["operation"].endswith("/CleanQueue") and e["outcome"] == "allowed"
    )
    assert "JOB_STATE_COMPLETED" in clean["detail"] and "limit: 7" in clean["detail"]
    assert not any(secret in str(entry) for entry in entries["entries"])


@pytest.fixture(scope="module")
def locked_stack(
    redis_server: RedisServer, bigquery_emulator: BigQueryEmulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    suffix = uuid.uuid4().hex[:8]
    stack = Stack(
        Path(tmp_path_factory.mktemp("locked-stack")),
        redis_host="127.0.0.1",
        redis_port=redis_server.port,
        gateway_port=free_port(),
        env={
            "SWITCHBOARD_REQUIRE_API_KEYS": "true",
            "SWITCHBOARD_ACCESS_KEY_PREFIX": f"acc-{suffix}",
            "RATELIMIT_KEY_PREFIX": f"rl-{suffix}",
            "JOBS_KEY_PREFIX": f"sb-{suffix}",
            **bigquery_emulator.env,
        },
        workers=1,
    )
    stack.start()
    yield stack
    stack.stop()


def test_with_keys_required_no_key_401_wrong_scope_403_a_created_key_works_a_revoked_one_401_within_2_s(
    locked_stack: Stack,
) -> None:
    stack = locked_stack
    no_key = _call(stack, "GET", "/api/queues", None)
    assert no_key.status_code == 401, no_key.text
    assert "x-api-key" in no_key.json()["message"] and "jobs:read" in no_key.json()["message"]
    unknown = _call(stack, "GET", "/api/queues", None, headers={"x-api-key": "sb_made_up_0000000000"})
    assert unknown.status_code == 401
    created = _call(
        stack, "POST", "/api/keys", {"name": "reader", "scopes": ["jobs:read"]}, auth=stack.admin_auth
    )
    assert created.status_code == 200, created.text
    key = {"x-api-key": created.json()["secret"]}
    # Every process learns of the new key by a message (and a re-read every second): within 2 s.
    assert _eventually_status(stack, key, {200}), "the created key does not work within 2 s"
    wrong_scope = _call(
        stack, "POST", "/api/job", {"queue": "analytics", "task": "diagnostics.echo"}, headers=key
    )
    assert wrong_scope.status_code == 403, wrong_scope.text
    assert "jobs:write" in wrong_scope.json()["message"]
    assert _call(stack, "PUT", "/api/rate-limits/x", RULE, headers=key).status_code == 403, "not an admin"
    healthy = _call(stack, "GET", "/api/test-connection", None)
    assert healthy.status_code == 200, "the connection test stays open"

    assert _call(stack, "DELETE", "/api/keys/reader", None, auth=stack.admin_auth).status_code == 200
    revoked_at = time.monotonic()
    while _call(stack, "GET", "/api/queues", None, headers=key).status_code == 200:
        assert time.monotonic() - revoked_at < 2.0, "the revoked key still works after 2 s"
        time.sleep(0.05)
    assert _call(stack, "GET", "/api/queues", None, headers=key).status_code == 401


def test_with_keys_required_the_grpc_health_service_still_answers_without_credentials(
    locked_stack: Stack,
) -> None:
    """Kubernetes' probes and load balancers hold no key."""
    for name, service in locked_stack.services.items():
        with grpc.insecure_channel(service.address) as channel:
            answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING, name


def test_with_keys_required_services_call_each_other_with_the_service_key(locked_stack: Stack) -> None:
    with grpc.insecure_channel(locked_stack.services["ratelimit"].address) as channel:
        limits = ratelimit_pb2_grpc.RateLimitServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            limits.ListRules(ratelimit_pb2.ListRulesRequest(), timeout=5)
        assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED
        service = (("x-switchboard-service-key", locked_stack.service_key),)
        assert limits.ListRules(ratelimit_pb2.ListRulesRequest(), metadata=service, timeout=5).rules
    # From outside, the service key counts for nothing: the gateway drops it.
    through_gateway = _call(
        locked_stack,
        "GET",
        "/api/queues",
        None,
        headers={"x-switchboard-service-key": locked_stack.service_key},
    )
    assert through_gateway.status_code == 401, through_gateway.text
    worker_log = (locked_stack.run_dir / "worker-0.log").read_text()
    assert "UNAUTHENTICATED" not in worker_log, "the worker reads the rules as a service"


def test_with_keys_required_a_query_key_needs_no_jobs_scope_and_reaches_only_query_jobs(
    locked_stack: Stack,
) -> None:
    """`bigquery:query` is all a key needs for both query APIs: the bigquery service submits and reads its
    jobs as itself. So it must never act on a job that is not a query's."""
    created = _call(locked_stack, "POST", "/api/keys", {"name": "analyst", "scopes": ["bigquery:query"]},
                    auth=locked_stack.admin_auth)  # fmt: skip
    assert created.status_code == 200, created.text
    key = {"x-api-key": created.json()["secret"]}
    ran = _call(locked_stack, "POST", "/api/query", {"sql": "SELECT 1 AS one", "waitMs": 20000}, headers=key)
    assert ran.status_code == 200, ran.text
    assert ran.json()["complete"] and ran.json()["rows"] == [{"one": "1"}]
    submitted = _call(locked_stack, "POST", "/api/bigquery", {"sql": "SELECT 2 AS two"}, headers=key)
    assert submitted.status_code == 200, submitted.text
    query_id = submitted.json()["jobId"]
    results = _call(
        locked_stack, "GET", "/api/bigquery/results", None, params={"job_id": query_id}, headers=key
    )
    assert results.status_code == 200, results.text
    # Another key with the same scope neither reads nor cancels it: a key's query is that key's.
    other_key = _call(locked_stack, "POST", "/api/keys", {"name": "analyst-2", "scopes": ["bigquery:query"]},
                      auth=locked_stack.admin_auth).json()["secret"]  # fmt: skip
    theirs = {"x-api-key": other_key}
    peeked = _call(locked_stack, "GET", "/api/bigquery/results", None, params={"job_id": query_id},
                   headers=theirs)  # fmt: skip
    assert peeked.status_code == 404, peeked.text
    stopped = _call(locked_stack, "POST", "/api/bigquery/cancel", {"jobId": query_id}, headers=theirs)
    assert stopped.status_code == 404, stopped.text
    admin_reads = _call(locked_stack, "GET", "/api/bigquery/results", None, params={"job_id": query_id},
                        auth=locked_stack.admin_auth)  # fmt: skip
    assert admin_reads.status_code == 200, admin_reads.text
    assert _call(locked_stack, "POST", "/api/job", {"queue": "analytics", "task": "diagnostics.echo"},
                 headers=key).status_code == 403, "the key itself has no jobs scope"  # fmt: skip

    other = _call(locked_stack, "POST", "/api/job", {"queue": "ratelimit", "task": "diagnostics.sleep",
                  "payload": {"ms": 1}, "delayMs": 600000}, auth=locked_stack.admin_auth)  # fmt: skip
    assert other.status_code == 200, other.text
    other_id = other.json()["id"]
    refused = _call(locked_stack, "POST", "/api/bigquery/cancel", {"jobId": other_id}, headers=key)
    assert refused.status_code == 404, refused.text
    still = _call(locked_stack, "GET", "/api/job/status", None, params={"id": other_id},
                  auth=locked_stack.admin_auth).json()  # fmt: skip
    assert still["state"] == "JOB_STATE_DELAYED", "a query key cancels no other job"
    peek = _call(locked_stack, "GET", "/api/bigquery/results", None, params={"job_id": other_id}, headers=key)
    assert peek.status_code == 404, peek.text


def test_with_keys_required_the_settings_say_so_and_it_cannot_be_switched_off_at_run_time(
    locked_stack: Stack,
) -> None:
    """The settings used to report `requireApiKeys: false` on a locked stack, and to store a change that no
    process read."""
    shown = _call(locked_stack, "GET", "/api/settings", None, auth=locked_stack.admin_auth)
    assert shown.status_code == 200, shown.text
    assert shown.json()["requireApiKeys"] is True
    opened = _call(
        locked_stack,
        "PATCH",
        "/api/settings",
        {"settings": {"requireApiKeys": False}, "updateMask": "requireApiKeys"},
        auth=locked_stack.admin_auth,
    )
    assert opened.status_code == 400, opened.text
    assert "SWITCHBOARD_REQUIRE_API_KEYS" in opened.json()["message"]
    assert _call(locked_stack, "GET", "/api/queues", None).status_code == 401, "still locked"


def test_with_keys_required_analytics_keys_write_or_read_and_need_no_jobs_scope(locked_stack: Stack) -> None:
    """`analytics:write` ingests (the analytics service submits the batch's job as itself, so the key needs
    no `jobs:write`) and reads nothing; `analytics:read` reads the counts and ingests nothing."""
    stack = locked_stack

    def new_key(name: str, scope: str) -> dict[str, str]:
        created = _call(stack, "POST", "/api/keys", {"name": name, "scopes": [scope]}, auth=stack.admin_auth)
        assert created.status_code == 200, created.text
        key = {"x-api-key": created.json()["secret"]}
        deadline = time.monotonic() + 2  # a new key reaches every process's cache within 2 s
        while _call(stack, "GET", "/api/analytics/events", None, headers=key).status_code == 401:
            assert time.monotonic() < deadline, f"the {scope} key does not work within 2 s"
            time.sleep(0.05)
        return key

    writer, reader = new_key("ingest-bot", "analytics:write"), new_key("report-bot", "analytics:read")
    name = f"access.{uuid.uuid4().hex[:8]}"
    batch = {"events": [{"name": name, "userId": "u1"}, {"name": name, "userId": "u2"}]}
    ingested = _call(stack, "POST", "/api/analytics", batch, headers=writer)
    assert ingested.status_code == 200, ingested.text
    assert _call(stack, "POST", "/api/analytics", batch, headers=reader).status_code == 403
    assert _call(stack, "GET", "/api/analytics/events", None, headers=writer).status_code == 403
    assert _call(stack, "GET", "/api/job/status", None, params={"id": ingested.json()["jobId"]},
                 headers=writer).status_code == 403, "the writer has no jobs scope"  # fmt: skip
    deadline = time.monotonic() + 30
    while True:
        listed = _call(stack, "GET", "/api/analytics/events", None, headers=reader)
        assert listed.status_code == 200, listed.text
        totals = {entry["name"]: entry["total"] for entry in listed.json().get("events", [])}
        if totals.get(name) == "2":
            break
        assert time.monotonic() < deadline, f"the batch is not counted within 30 s: {totals.get(name)}"
        time.sleep(0.1)


def test_with_keys_required_the_rate_limit_follows_the_key_and_its_tier(locked_stack: Stack) -> None:
    stack, admin = locked_stack, locked_stack.admin_auth

    def new_key(name: str, rule: str = "") -> dict[str, str]:
        body = {"name": name, "scopes": ["jobs:read"], "rateLimitRule": rule}
        created = _call(stack, "POST", "/api/keys", body, auth=admin)
        assert created.status_code == 200, created.text
        return {"x-api-key": created.json()["secret"]}

    def statuses(headers: dict[str, str], count: int) -> list[int]:
        return [_call(stack, "GET", "/api/queues", None, headers=headers).status_code for _ in range(count)]

    first, other, tiered = new_key("metered"), new_key("other"), new_key("tiered", rule="gold")
    # The admin's own calls count too (as `admin:admin`): the test makes fewer than six after this.
    assert (
        _call(stack, "PUT", "/api/rate-limits/api", {"limit": 6, "period": "60s"}, auth=admin).status_code
        == 200
    )
    assert (
        _call(stack, "PUT", "/api/rate-limits/gold", {"limit": 2, "period": "60s"}, auth=admin).status_code
        == 200
    )
    try:
        assert _eventually_status(stack, first, {200})
        assert statuses(first, 6) == [200] * 5 + [429]
        # The client cannot name itself something else to the limiter.
        assert statuses({**first, "x-switchboard-client": "someone-else"}, 1) == [429]
        # Rotating the key (revoke, a new secret under the same name) does not reset its allowance.
        assert _call(stack, "DELETE", "/api/keys/metered", None, auth=admin).status_code == 200
        rotated = new_key("metered")
        assert _eventually_status(stack, rotated, {429}), "the rotated key is still over its limit"
        assert statuses(other, 1) == [200], "another key has its own allowance"
        assert statuses(tiered, 3) == [200, 200, 429], "its own rule, stricter than `api`"
    finally:
        _call(stack, "PUT", "/api/rate-limits/api", {"limit": 100, "period": "1s", "burst": 100}, auth=admin)


def _eventually_status(stack: Stack, headers: dict[str, str], wanted: set[int]) -> bool:
    """Whether a call with `headers` answers one of `wanted` within 2 s (a new key reaches every cache)."""
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        status = _call(stack, "GET", "/api/queues", None, headers=headers).status_code
        if status in wanted:
            return True
        assert status == 401, status  # not known yet: the only other answer allowed
        time.sleep(0.05)
    return False


def test_pausing_a_queue_through_the_settings_is_done_as_the_admin(stack: Stack) -> None:
    """The admin service pauses the queue on the jobs service with the admin's own credentials."""

    def set_paused(paused: bool) -> requests.Response:
        body = {"settings": {"queuePaused": {"bigquery": paused}}, "updateMask": "queuePaused.bigquery"}
        return _call(stack, "PATCH", "/api/settings", body, auth=stack.admin_auth)

    try:
        changed = set_paused(True)
        assert changed.status_code == 200, changed.text
        queues = _call(stack, "GET", "/api/queues", None).json()["queues"]
        assert next(q for q in queues if q["name"] == "bigquery")["paused"] is True
        entries = _call(stack, "GET", "/api/audit", None, auth=stack.admin_auth).json()["entries"]
        pause = next(
            e for e in entries if e["operation"].endswith("/PauseQueue") and e["target"] == "bigquery"
        )
        assert (pause["principal"], pause["outcome"]) == (f"admin:{stack.admin_user}", "allowed")
    finally:
        assert set_paused(False).status_code == 200
