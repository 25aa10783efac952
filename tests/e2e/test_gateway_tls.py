"""The gateway terminates TLS when GATEWAY_TLS_CERT_FILE/_KEY_FILE are set: REST over HTTPS and native
gRPC over TLS (HTTP/2 by ALPN) reach a real service; plaintext is refused. A self-signed CA made here."""

from __future__ import annotations

import asyncio
import http.client
import ssl
from collections.abc import Iterator

import grpc
import pytest
import requests

from devstack.envoy import EnvoyProcess
from devstack.ports import free_port
from devstack.redis import RedisServer
from devstack.services import REPO_ROOT, ServiceProcess
from services.gateway.config import render
from services.gateway.settings import GatewaySettings
from services.runtime.settings import PeerAddresses
from switchboard.ratelimit.v1 import ratelimit_pb2, ratelimit_pb2_grpc
from tests.certificates import ServerCertificate, issue_server_certificate

NOWHERE = "127.0.0.1:1"  # the services this test does not start


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> ServerCertificate:
    return issue_server_certificate(tmp_path_factory.mktemp("gateway-tls"))


@pytest.fixture(scope="module")
def tls_gateway(
    redis_server: RedisServer, certificate: ServerCertificate, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[int]:
    """Envoy with TLS in front of a real rate-limit service; yields the gateway's port."""
    run_dir = tmp_path_factory.mktemp("tls-stack")
    ratelimit = ServiceProcess("ratelimit", run_dir=run_dir, env={"REDIS_PORT": str(redis_server.port)})
    ratelimit.start()
    envoy: EnvoyProcess | None = None
    try:
        ratelimit.wait_ready()
        port = free_port()
        settings = GatewaySettings(
            listen_address="127.0.0.1",
            port=port,
            admin_port=0,
            descriptor_path=str(REPO_ROOT / "gen" / "descriptor.binpb"),
            peers=PeerAddresses(
                jobs_address=NOWHERE,
                ratelimit_address=ratelimit.address,
                bigquery_address=NOWHERE,
                analytics_address=NOWHERE,
                admin_address=NOWHERE,
            ),
            tls_cert_file=str(certificate.cert_file),
            tls_key_file=str(certificate.key_file),
        )
        config = run_dir / "envoy-tls.yaml"
        config.write_text(render(settings))
        envoy = EnvoyProcess(config, run_dir=run_dir)
        envoy.start()
        yield port
    finally:
        if envoy is not None:
            envoy.stop()
        ratelimit.stop()


def test_rest_over_https(tls_gateway: int, certificate: ServerCertificate) -> None:
    response = requests.get(
        f"https://localhost:{tls_gateway}/api/rate-limits", verify=str(certificate.ca_file), timeout=10
    )
    assert response.status_code == 200, response.text
    assert "rules" in response.json()


async def test_native_grpc_over_tls(tls_gateway: int, certificate: ServerCertificate) -> None:
    credentials = grpc.ssl_channel_credentials(root_certificates=certificate.ca_file.read_bytes())
    async with grpc.aio.secure_channel(f"localhost:{tls_gateway}", credentials) as channel:
        response = await ratelimit_pb2_grpc.RateLimitServiceStub(channel).ListRules(
            ratelimit_pb2.ListRulesRequest(), timeout=10
        )
    assert response.rules, "the built-in rules came back through the TLS listener"


def test_plaintext_is_refused(tls_gateway: int) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", tls_gateway, timeout=5)
    try:
        with pytest.raises((ConnectionError, http.client.HTTPException)):
            connection.request("GET", "/api/rate-limits")
            connection.getresponse()
    finally:
        connection.close()


def test_a_client_that_does_not_trust_the_ca_is_refused(tls_gateway: int) -> None:
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"https://localhost:{tls_gateway}/api/rate-limits", timeout=10)


async def test_the_listener_offers_http2_and_http11_by_alpn(
    tls_gateway: int, certificate: ServerCertificate
) -> None:
    for protocol in ("h2", "http/1.1"):
        context = ssl.create_default_context(cafile=str(certificate.ca_file))
        context.set_alpn_protocols([protocol])
        _, writer = await asyncio.open_connection("localhost", tls_gateway, ssl=context)
        try:
            assert writer.get_extra_info("ssl_object").selected_alpn_protocol() == protocol
        finally:
            writer.close()
            await writer.wait_closed()
