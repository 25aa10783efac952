"""REST through Envoy: the transcoded API answers JSON, errors included, and gRPC shares the port."""

from __future__ import annotations

import grpc
import requests

from devstack.stack import Stack
from switchboard.admin.v1 import connection_pb2, connection_pb2_grpc

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
    response = http.get(f"{stack.gateway_url}/api/test-connection", timeout=10)
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
    assert checks["bigquery"] == {
        "name": "bigquery", "ok": True, "latencyMs": 0, "detail": "not configured",
        "status": "CHECK_STATUS_NOT_CONFIGURED",
    }  # fmt: skip
    assert report["checkedAt"].endswith("Z")


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


def test_an_unimplemented_rpc_is_501_json(stack: Stack, http: requests.Session) -> None:
    response = http.get(f"{stack.gateway_url}/api/analytics/events", timeout=10)
    body = _assert_json_error(response, 501, 12)
    assert "AnalyticsService/ListEventNames" in str(body["message"])


def test_every_rest_path_reaches_its_service(stack: Stack, http: requests.Session) -> None:
    """Each path of the contract is routed and transcoded: 501 from the service, not 404 from Envoy."""
    unimplemented = [
        ("POST", "/api/analytics", {"events": [{"name": "signup", "userId": "u1"}]}),
        ("GET", "/api/analytics?event=signup&granularity=GRANULARITY_HOUR", None),
        ("GET", "/api/analytics/events", None),
        ("POST", "/api/bigquery", {"sql": "SELECT 1", "dryRun": True}),
        ("GET", "/api/bigquery/results?job_id=q1&page_size=10", None),
        ("POST", "/api/bigquery/cancel", {"jobId": "q1"}),
        ("POST", "/api/query", {"sql": "SELECT 1", "waitMs": 1000}),
    ]
    for method, path, body in unimplemented:
        response = http.request(method, f"{stack.gateway_url}{path}", json=body, timeout=10)
        assert response.status_code == 501, (method, path, response.status_code, response.text)
        assert response.json()["code"] == 12


def test_native_grpc_clients_use_the_same_port(stack: Stack) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{stack.gateway_port}") as channel:
        report = connection_pb2_grpc.ConnectionServiceStub(channel).TestConnection(
            connection_pb2.TestConnectionRequest(), timeout=10
        )
    assert report.ok
    assert len(report.checks) == 6
