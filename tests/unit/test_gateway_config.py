"""The gateway's config is rendered from one template; every placeholder gets a value, and the limits it
enforces agree with what the services behind it accept."""

from __future__ import annotations

import json

import pytest
from google.protobuf import json_format, struct_pb2
from pydantic import ValidationError

from services.gateway import kubernetes
from services.gateway.config import body_limits, render, split_address
from services.gateway.settings import GatewaySettings
from services.runtime import server
from services.runtime.message_size import (
    DEFAULT_BODY_LIMIT_BYTES,
    JSON_TO_PROTOBUF_EXPANSION,
    MAX_BODY_LIMIT_BYTES,
    describe,
)
from services.runtime.settings import PeerAddresses


def test_rendering_fills_every_placeholder() -> None:
    config = render(
        GatewaySettings(
            port=8081,
            admin_port=9902,
            peers=PeerAddresses(jobs_address="jobs.switchboard.svc:50051", admin_address="10.0.0.7:50055"),
        )
    )
    assert "${" not in config
    assert "port_value: 8081" in config
    assert "address: jobs.switchboard.svc, port_value: 50051" in config
    assert "address: 10.0.0.7, port_value: 50055" in config
    assert "address: 127.0.0.1, port_value: 9902" in config, "Envoy admin listens on loopback only"


@pytest.mark.parametrize(
    ("address", "expected"),
    [("jobs:50051", ("jobs", 50051)), ("[::1]:7000", ("::1", 7000)), ("127.0.0.1:1", ("127.0.0.1", 1))],
)
def test_split_address(address: str, expected: tuple[str, int]) -> None:
    assert split_address(address) == expected


@pytest.mark.parametrize("address", ["jobs", "jobs:", ":50051", "jobs:http", "jobs:70000"])
def test_split_address_rejects_what_is_not_host_port(address: str) -> None:
    with pytest.raises(ValueError, match="expected host:port"):
        split_address(address)


def test_rate_limiting_fails_open_unless_told_to_fail_closed() -> None:
    assert "failure_mode_deny: false" in render(GatewaySettings())
    closed = render(GatewaySettings(ratelimit_fail_closed=True, ratelimit_timeout_ms=80))
    assert "failure_mode_deny: true" in closed
    assert "timeout: 0.08s" in closed


@pytest.mark.parametrize(
    "settings",
    [
        GatewaySettings(),
        GatewaySettings(
            body_limit_bytes=MAX_BODY_LIMIT_BYTES, analytics_body_limit_bytes=MAX_BODY_LIMIT_BYTES
        ),
    ],
    ids=["defaults", "largest allowed"],
)
def test_no_body_the_gateway_lets_through_meets_a_services_own_limit(settings: GatewaySettings) -> None:
    """Over a service's gRPC limit the answer is RESOURCE_EXHAUSTED (a 429 through the gateway): the
    gateway's 413 must come first for any body it may be configured to take, transcoded or not."""
    for route, limit in body_limits(settings).items():
        assert limit * JSON_TO_PROTOBUF_EXPANSION <= server.MAX_MESSAGE_BYTES, route
        assert f"max_request_bytes: {limit}" in render(settings)
    assert f"max_request_body_size: {MAX_BODY_LIMIT_BYTES}" in render(settings), "the transcoder's cap"


def test_a_body_limit_cannot_be_raised_past_what_the_services_accept() -> None:
    with pytest.raises(ValidationError, match="less than or equal"):
        GatewaySettings(body_limit_bytes=MAX_BODY_LIMIT_BYTES + 1)
    with pytest.raises(ValidationError, match="less than or equal"):
        GatewaySettings(analytics_body_limit_bytes=MAX_BODY_LIMIT_BYTES + 1)


def test_the_413_names_the_limit_of_the_route() -> None:
    config = render(GatewaySettings(body_limit_bytes=1024 * 1024, analytics_body_limit_bytes=2 * 1024 * 1024))
    assert 'body_limit: "1 MiB"' in config
    assert 'body_limit: "2 MiB"' in config
    assert config.count("%METADATA(ROUTE:switchboard:body_limit)%") >= 2


def _nested(depth: int) -> object:
    value: object = [0]
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    "payload",
    [
        [0] * 5000,
        [[]] * 5000,
        [{}] * 5000,
        [""] * 5000,
        [True] * 5000,
        [None] * 5000,
        {f"{index}": 0 for index in range(3000)},
        _nested(40),
    ],
    ids=["numbers", "empty lists", "empty objects", "empty strings", "booleans", "nulls", "keys", "nested"],
)
def test_json_never_grows_past_the_expansion_factor_as_protobuf(payload: object) -> None:
    """The factor the services' limit is built on holds for the worst shapes a Struct payload can take."""
    message = json_format.ParseDict({"x": payload}, struct_pb2.Struct())
    compact_json = json.dumps({"x": payload}, separators=(",", ":")).encode()
    assert len(message.SerializeToString()) <= JSON_TO_PROTOBUF_EXPANSION * len(compact_json)


def test_describe_names_sizes_in_binary_units() -> None:
    assert describe(DEFAULT_BODY_LIMIT_BYTES) == "1 MiB 64 KiB"
    assert describe(4 * 1024 * 1024) == "4 MiB"
    assert describe(1500) == "1 KiB 476 bytes"


def test_every_route_is_rate_limited_and_native_grpc_has_a_default_deadline() -> None:
    config = render(
        GatewaySettings(
            grpc_default_timeout_seconds=7,
            backstop_requests_per_second=900,
            backstop_client_requests_per_second=90,
        )
    )
    assert "timeout: 0s, max_stream_duration: *grpc_deadline" in config
    assert (
        "max_stream_duration: &grpc_deadline {max_stream_duration: 7s, grpc_timeout_header_max: 300s}"
        in config
    )
    assert "token_bucket: {max_tokens: 900, tokens_per_fill: 900, fill_interval: 1s}" in config
    assert "&client_backstop {max_tokens: 90, tokens_per_fill: 90, fill_interval: 1s}" in config
    routes_text = config[config.index("routes:") : config.index("http_filters:")]
    proxied = routes_text.split("- match:")[2:]  # after the refusal of over-long keys
    guards = ("*rest", "*sink_filters", "envoy.filters.http.local_ratelimit")
    unguarded = [r for r in proxied if not any(guard in r for guard in guards)]
    assert not unguarded, "a backstop on each route"
    # Every route asks the rate-limit service, but the checks: they charge the per-address ceiling
    # themselves (tests/e2e/test_rate_limiting.py), so Envoy makes one call per check, not two.
    checks = (
        'path: "/api/rate-limits/check"',
        'path: "/switchboard.ratelimit.v1.RateLimitService/CheckRateLimit"',
    )
    limited = [r for r in proxied if "cluster: " in r and not any(check in r for check in checks)]
    assert len(limited) > 20, "the proxied routes"
    assert all("rate_limits:" in r for r in limited), [
        r.splitlines()[0] for r in limited if "rate_limits" not in r
    ]
    assert all("rate_limits:" not in r for r in proxied if any(check in r for check in checks))


def test_tls_is_off_unless_both_files_are_set() -> None:
    assert "transport_socket" not in render(GatewaySettings())
    config = render(GatewaySettings(tls_cert_file="/certs/tls.crt", tls_key_file="/certs/tls.key"))
    assert '"filename": "/certs/tls.crt"' in config
    assert '"alpn_protocols": ["h2", "http/1.1"]' in config


@pytest.mark.parametrize("only", [{"tls_cert_file": "/c.pem"}, {"tls_key_file": "/k.pem"}])
def test_one_tls_file_alone_is_a_configuration_error(only: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="GATEWAY_TLS_CERT_FILE and GATEWAY_TLS_KEY_FILE"):
        GatewaySettings(**only)  # type: ignore[arg-type]


def test_the_kubernetes_render_names_each_service_whatever_the_environment_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JOBS_ADDRESS", "localhost:1234")
    assert kubernetes.cluster_peers().by_service() == {
        "jobs": "jobs:50051",
        "ratelimit": "ratelimit:50052",
        "bigquery": "bigquery:50053",
        "analytics": "analytics:50054",
        "admin": "admin:50055",
    }


def test_without_a_reflection_service_the_gateway_routes_no_reflection() -> None:
    assert "cluster: reflection" in render(GatewaySettings())
    config = render(GatewaySettings(reflection_address=""))
    assert "reflection" not in config.replace("grpc_reflection", "")
    assert "- name: admin" in config, "the clusters before it stay"


def test_a_body_declared_over_its_routes_limit_goes_to_the_body_sink() -> None:
    config = render(
        GatewaySettings(
            body_sink_address="127.0.0.1:6001",
            body_limit_bytes=100_000,
            analytics_body_limit_bytes=200_000,
        )
    )
    routes_text = config[config.index("routes:") : config.index("http_filters:")]
    sink_routes = [r for r in routes_text.split("- match:") if "cluster: body_sink" in r or "*to_sink" in r]
    assert len(sink_routes) == 2, "analytics, then every other REST path"
    analytics, default = sink_routes
    assert "range_match: {start: 200001, end: 67108865}" in analytics
    assert '"/api/analytics"' in analytics
    assert "range_match: {start: 100001, end: 67108865}" in default
    assert "invert_match: true" in default, "analytics bodies are measured against their own limit"
    first_proxied = routes_text.split("- match:")[2]
    assert "body_sink" in first_proxied, "before every route that would buffer the body"
    assert "socket_address: {address: 127.0.0.1, port_value: 6001}" in config


def test_without_a_body_sink_the_buffer_filter_answers_alone() -> None:
    config = render(GatewaySettings(body_sink_address=""))
    assert "body_sink" not in config
    assert "range_match" not in config
    cluster = kubernetes.kubernetes_settings(GatewaySettings(), tls=False)
    assert "body_sink" not in render(cluster), "no sink in the cluster (no reflection Deployment)"
