"""The gateway's config is rendered from one template; every placeholder gets a value."""

from __future__ import annotations

import pytest

from services.gateway import kubernetes
from services.gateway.config import render, split_address
from services.gateway.settings import GatewaySettings
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
