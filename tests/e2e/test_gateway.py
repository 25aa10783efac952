"""REST through Envoy: the transcoded API answers JSON, errors included, and gRPC shares the port; the
limits Envoy enforces on bodies, identities and deadlines; reflection (grpcurl) through :8080."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
import requests
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection_pb2

from devstack.envoy import EnvoyProcess
from devstack.ports import free_port
from devstack.redis import RedisServer
from devstack.services import SERVICE_NAMES, ServiceProcess
from devstack.stack import DESCRIPTOR_PATH, Stack
from services.gateway.config import render
from services.gateway.settings import GatewaySettings
from services.runtime.settings import PeerAddresses
from switchboard.admin.v1 import connection_pb2, connection_pb2_grpc
from switchboard.jobs.v1 import jobs_pb2, jobs_pb2_grpc

GRPCURL = str(Path(sys.executable).with_name("grpcurl"))

SERVICE_CHECKS = {"jobs-service", "ratelimit-service", "bigquery-service", "analytics-service"}


def _assert_json_error(response: requests.Response, http_status: int, grpc_code: int) -> dict[str, object]:
    assert response.status_code == http_status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, object] = response.json()
    assert body["code"] == grpc_code
    assert isinstance(body["message"], str)
    assert body["message"]
    return body


def test_test_connection_reports_every_dependency(stack: Stack, http: requests.Session) -> None:
    response = http.get(f"{stack.gateway_url}/api/test-connection", auth=stack.admin_auth, timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    report = response.json()
    assert report["ok"] is True
    checks = {check["name"]: check for check in report["checks"]}
    assert set(checks) == {"redis", "bigquery", *SERVICE_CHECKS}
    assert checks["redis"]["status"] == "CHECK_STATUS_PASSED"
    assert checks["redis"]["detail"].startswith("redis 7.")
    assert checks["redis"]["latencyMs"] > 0
    for name in SERVICE_CHECKS:
        assert checks[name]["status"] == "CHECK_STATUS_PASSED", checks[name]
    # The stack's services query the test session's BigQuery emulator: checked for real, with SELECT 1.
    assert checks["bigquery"]["status"] == "CHECK_STATUS_PASSED", checks["bigquery"]
    assert checks["bigquery"]["detail"].startswith("SELECT 1 answered by the emulator at http://127.0.0.1:")
    assert checks["bigquery"]["latencyMs"] > 0
    assert report["checkedAt"].endswith("Z")


def test_test_connection_hides_details_from_the_unauthenticated(stack: Stack, http: requests.Session) -> None:
    report = http.get(f"{stack.gateway_url}/api/test-connection", timeout=10).json()
    assert report["ok"] is True
    assert {check["name"] for check in report["checks"]} == {"redis", "bigquery", *SERVICE_CHECKS}
    assert [check["detail"] for check in report["checks"]] == [""] * len(report["checks"]), "no versions"
    wrong = http.get(f"{stack.gateway_url}/api/test-connection", auth=("admin", "wrong"), timeout=10)
    assert wrong.status_code == 200 and all(not c["detail"] for c in wrong.json()["checks"])


def test_test_connection_also_answers_post(stack: Stack, http: requests.Session) -> None:
    response = http.post(f"{stack.gateway_url}/api/test-connection", json={}, timeout=10)
    assert response.status_code == 200
    assert response.json()["ok"] is True


def test_no_grpc_headers_leak_into_rest_answers(stack: Stack, http: requests.Session) -> None:
    for response in (
        http.get(f"{stack.gateway_url}/api/test-connection", timeout=10),
        http.get(f"{stack.gateway_url}/api/job/status", params={"id": "x"}, timeout=10),
        http.get(f"{stack.gateway_url}/api/rate-limits", timeout=10),
        http.get(f"{stack.gateway_url}/api/settings", timeout=10),
    ):
        assert not [name for name in response.headers if name.lower().startswith("grpc-")]


def test_unknown_path_is_404_json(stack: Stack, http: requests.Session) -> None:
    body = _assert_json_error(http.get(f"{stack.gateway_url}/api/nope", timeout=10), 404, 5)
    assert "/api/nope" in str(body["message"])


def test_unknown_query_parameter_is_400_json(stack: Stack, http: requests.Session) -> None:
    response = http.get(f"{stack.gateway_url}/api/job/status", params={"id": "1", "bogus": "2"}, timeout=10)
    body = _assert_json_error(response, 400, 3)
    assert "bogus" in str(body["message"])


def test_malformed_json_body_is_400_json(stack: Stack, http: requests.Session) -> None:
    response = http.post(
        f"{stack.gateway_url}/api/job",
        data=b'{"queue": "analytics",',
        headers={"content-type": "application/json"},
        timeout=10,
    )
    _assert_json_error(response, 400, 3)


def test_every_rest_path_reaches_its_service(stack: Stack, http: requests.Session) -> None:
    """Each path of the contract is routed and transcoded to its service, which answers it."""
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    hours = f"start_time={(hour - timedelta(hours=2)).isoformat()}&end_time={hour.isoformat()}".replace(
        "+00:00", "Z"
    )
    paths = [
        ("POST", "/api/analytics", {"events": [{"name": "signup", "userId": "u1"}]}),
        ("GET", f"/api/analytics?event=signup&granularity=GRANULARITY_HOUR&{hours}", None),
        ("GET", "/api/analytics/events", None),
        ("POST", "/api/query", {"sql": "SELECT 1 AS one", "waitMs": 20000}),
        ("GET", "/api/queues/analytics/metrics", None),
        ("GET", "/api/job/search?filter.task=diagnostics.echo", None),
        ("GET", "/api/audit", None),
    ]
    for method, path, body in paths:
        response = http.request(
            method, f"{stack.gateway_url}{path}", json=body, auth=stack.admin_auth, timeout=30
        )
        assert response.status_code == 200, (method, path, response.status_code, response.text)
        assert response.headers["content-type"].startswith("application/json")


def test_native_grpc_clients_use_the_same_port(stack: Stack) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{stack.gateway_port}") as channel:
        report = connection_pb2_grpc.ConnectionServiceStub(channel).TestConnection(
            connection_pb2.TestConnectionRequest(), timeout=10
        )
    assert report.ok
    assert len(report.checks) == 6


def _job_body(payload_bytes: int) -> bytes:
    return json.dumps(
        {"queue": "analytics", "task": "diagnostics.echo", "payload": {"x": "a" * payload_bytes}}
    ).encode()


def test_a_body_over_the_limit_is_413_json_naming_it_not_a_rate_limit(
    stack: Stack, http: requests.Session
) -> None:
    """It used to reach the service, whose gRPC limit answered RESOURCE_EXHAUSTED: a 429 that clients
    read as a rate limit and retried."""
    body = _job_body(6_000_000)
    answer = http.post(
        f"{stack.gateway_url}/api/job", data=body, headers={"content-type": "application/json"}, timeout=30
    )
    error = _assert_json_error(answer, 413, 3)
    assert "1 MiB 64 KiB" in str(error["message"])
    assert "retry-after" not in answer.headers
    # A client that writes the whole body before it reads (urllib) gets it too: test_body_sink.py.
    within = http.post(
        f"{stack.gateway_url}/api/job", data=_job_body(1_000_000), timeout=30,
        headers={"content-type": "application/json"},
    )  # fmt: skip
    assert within.status_code == 200, within.text[:300]


def test_analytics_takes_larger_bodies_up_to_its_own_limit(stack: Stack, http: requests.Session) -> None:
    def ingest(property_bytes: int) -> requests.Response:
        events = {"events": [{"name": "signup", "properties": {"blob": "b" * property_bytes}}]}
        return http.post(f"{stack.gateway_url}/api/analytics", json=events, timeout=30)

    reached = _assert_json_error(ingest(3_000_000), 400, 3)
    assert "limit" in str(reached["message"]), "reaches the service, which holds a call to 1 MiB"
    error = _assert_json_error(ingest(5_000_000), 413, 3)
    assert "4 MiB 64 KiB" in str(error["message"])


def test_an_oversize_grpc_message_through_the_gateway_is_not_resource_exhausted(stack: Stack) -> None:
    request = jobs_pb2.SubmitJobRequest(queue="analytics", task="diagnostics.echo")
    request.payload.update({"x": "a" * 6_000_000})
    options = [("grpc.max_send_message_length", 16 * 1024 * 1024)]
    channel = grpc.insecure_channel(f"127.0.0.1:{stack.gateway_port}", options=options)
    with channel, pytest.raises(grpc.RpcError) as refused:
        jobs_pb2_grpc.JobsServiceStub(channel).SubmitJob(request, timeout=30)
    assert refused.value.code() != grpc.StatusCode.RESOURCE_EXHAUSTED, "that code means a rate limit"
    assert "limit of 1 MiB 64 KiB" in str(refused.value.details())


def test_an_api_key_too_long_for_an_identity_is_refused(stack: Stack, http: requests.Session) -> None:
    """A 250+ character key used to fail the rate-limit lookup, and Envoy then let every request through."""
    key = "k" * 250
    error = _assert_json_error(
        http.get(f"{stack.gateway_url}/api/queues", headers={"x-api-key": key}, timeout=10), 401, 16
    )
    assert "x-api-key is longer than 128 characters" in str(error["message"])
    with (
        grpc.insecure_channel(f"127.0.0.1:{stack.gateway_port}") as channel,
        pytest.raises(grpc.RpcError) as refused,
    ):
        jobs_pb2_grpc.JobsServiceStub(channel).ListQueues(
            jobs_pb2.ListQueuesRequest(), metadata=[("x-api-key", key)], timeout=10
        )
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    longest = http.get(f"{stack.gateway_url}/api/queues", headers={"x-api-key": "k" * 128}, timeout=10)
    assert longest.status_code == 200
    assert "x-ratelimit-remaining" in longest.headers, "limited, with a verdict"


def _grpcurl(stack: Stack, *arguments: str) -> str:
    """grpcurl against the gateway: options, then the address, then what to do."""
    *options, action = arguments
    done = subprocess.run(
        [GRPCURL, "-plaintext", *options, f"127.0.0.1:{stack.gateway_port}", *action.split(" ")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_grpcurl_lists_describes_and_calls_through_the_gateway(stack: Stack) -> None:
    """It used to fail: the gateway routed no reflection."""
    assert set(_grpcurl(stack, "list").split()) >= {
        "switchboard.jobs.v1.JobsService",
        "switchboard.ratelimit.v1.RateLimitService",
        "switchboard.bigquery.v1.BigQueryService",
        "switchboard.bigquery.v1.QueryService",
        "switchboard.analytics.v1.AnalyticsService",
        "switchboard.admin.v1.SettingsService",
        "switchboard.admin.v1.ConnectionService",
    }
    described = _grpcurl(stack, "describe switchboard.jobs.v1.JobsService.SubmitJob")
    assert "rpc SubmitJob ( .switchboard.jobs.v1.SubmitJobRequest )" in described
    body = {"queue": "analytics", "task": "diagnostics.echo", "payload": {"n": 7}}
    job = json.loads(_grpcurl(stack, "-d", json.dumps(body), "switchboard.jobs.v1.JobsService/SubmitJob"))
    assert (job["queue"], job["task"], job["payload"]) == ("analytics", "diagnostics.echo", {"n": 7})


def test_reflection_v1_answers_through_the_gateway_too(stack: Stack) -> None:
    """grpcurl 1.8 speaks v1alpha; newer clients ask v1 first (same messages, another package)."""
    with grpc.insecure_channel(f"127.0.0.1:{stack.gateway_port}") as channel:
        call = channel.stream_stream(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        answers = list(
            call(
                iter(
                    [
                        reflection_pb2.ServerReflectionRequest(list_services=""),
                        reflection_pb2.ServerReflectionRequest(
                            file_containing_symbol="switchboard.ratelimit.v1.RateLimitService"
                        ),
                    ]
                ),
                timeout=10,
            )
        )
    listed = {service.name for service in answers[0].list_services_response.service}
    assert "switchboard.jobs.v1.JobsService" in listed
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in answers[1].file_descriptor_response.file_descriptor_proto
    ]
    assert "switchboard/ratelimit/v1/ratelimit.proto" in {file.name for file in files}


def test_a_native_grpc_call_without_a_deadline_gets_the_gateways(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """Behind the gateway, a call whose client set no deadline used to wait for ever on a hung service."""
    hung = socket.create_server(("127.0.0.1", 0))  # accepts (the kernel's backlog), never answers
    # A real admin service: its authorizer lets the call through to the hung one.
    admin = ServiceProcess("admin", run_dir=tmp_path, env={"REDIS_PORT": str(redis_server.port)})
    admin.start()
    try:
        admin.wait_ready()
        address = f"127.0.0.1:{hung.getsockname()[1]}"
        peers = {f"{name}_address": address for name in SERVICE_NAMES}
        settings = GatewaySettings(
            listen_address="127.0.0.1",
            port=free_port(),
            admin_port=0,
            descriptor_path=str(DESCRIPTOR_PATH),
            grpc_default_timeout_seconds=1,
            peers=PeerAddresses(**{**peers, "admin_address": admin.address}),
            reflection_address=address,
        )
        config = tmp_path / "envoy.yaml"
        config.write_text(render(settings))
        envoy = EnvoyProcess(config, run_dir=tmp_path)
        envoy.start()
        try:
            with grpc.insecure_channel(f"127.0.0.1:{settings.port}") as channel:
                pending = jobs_pb2_grpc.JobsServiceStub(channel).ListQueues.future(
                    jobs_pb2.ListQueuesRequest()
                )
                try:
                    failure = pending.exception(timeout=20)
                finally:
                    pending.cancel()
        finally:
            envoy.stop()
    finally:
        hung.close()
        admin.stop()
    assert isinstance(failure, grpc.RpcError)
    assert failure.code() == grpc.StatusCode.DEADLINE_EXCEEDED
