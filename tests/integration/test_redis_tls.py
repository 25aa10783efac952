"""`REDIS_TLS`: both ways to Redis (the pool and RedisMux) speak TLS to a real TLS-only redis-server, and
verify its certificate."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import redis.exceptions

from devstack.ports import free_port
from devstack.processes import ManagedProcess
from services.runtime.redis_mux import RedisMux
from services.runtime.redis_pool import create_redis
from services.runtime.settings import RedisSettings
from tests.certificates import ServerCertificate, issue_server_certificate


@pytest.fixture
def certificate(tmp_path: Path) -> ServerCertificate:
    return issue_server_certificate(tmp_path / "tls")


@pytest.fixture
def tls_redis_port(tmp_path: Path, certificate: ServerCertificate) -> Iterator[int]:
    """A redis-server that accepts TLS connections only (no plaintext port), as managed Redis does."""
    port = free_port()
    process = ManagedProcess(
        "redis-tls",
        [
            "redis-server",
            "--port", "0",
            "--tls-port", str(port),
            "--bind", "127.0.0.1",
            "--tls-cert-file", str(certificate.cert_file),
            "--tls-key-file", str(certificate.key_file),
            "--tls-ca-cert-file", str(certificate.ca_file),
            "--tls-auth-clients", "no",
            "--dir", str(tmp_path),
            "--save", "",
        ],
        log_path=tmp_path / "redis-tls.log",
    )  # fmt: skip
    process.start()

    def answers() -> bool | None:
        client = redis.Redis(port=port, ssl=True, ssl_ca_certs=str(certificate.ca_file), socket_timeout=0.5)
        try:
            return True if client.ping() else None
        finally:
            client.close()

    try:
        process.wait_until(answers, timeout=10, what="PING over TLS")
        yield port
    finally:
        process.stop()


async def test_pool_and_mux_speak_tls_to_redis(tls_redis_port: int, certificate: ServerCertificate) -> None:
    settings = RedisSettings(port=tls_redis_port, tls=True, tls_ca_file=str(certificate.ca_file))
    client = create_redis(settings)
    mux = RedisMux(settings)
    try:
        await client.set("tls-check", "pool")
        assert await mux.execute("GET", "tls-check") == b"pool"
        await mux.execute("SET", "tls-check", "mux")
        assert await client.get("tls-check") == b"mux"
    finally:
        await client.aclose()
        await mux.aclose()


async def test_without_tls_a_tls_only_redis_is_unreachable(tls_redis_port: int) -> None:
    settings = RedisSettings(port=tls_redis_port, timeout_seconds=0.5, retries=0)
    client = create_redis(settings)
    mux = RedisMux(settings)
    try:
        with pytest.raises(redis.exceptions.ConnectionError):
            await client.ping()
        with pytest.raises((redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)):
            await mux.execute("PING")
    finally:
        await client.aclose()
        await mux.aclose()


async def test_a_certificate_from_an_untrusted_ca_is_refused(tls_redis_port: int) -> None:
    # No CA file: the system's CAs, which did not sign the test certificate.
    settings = RedisSettings(port=tls_redis_port, tls=True, timeout_seconds=0.5, retries=0)
    client = create_redis(settings)
    mux = RedisMux(settings)
    try:
        with pytest.raises(redis.exceptions.ConnectionError, match=r"(?i)certificate"):
            await client.ping()
        with pytest.raises(redis.exceptions.ConnectionError, match=r"(?i)certificate"):
            await mux.execute("PING")
    finally:
        await client.aclose()
        await mux.aclose()
