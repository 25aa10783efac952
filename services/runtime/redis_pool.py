"""The process's one Redis connection pool, bounded so the process never opens more than its cap.

A `BlockingConnectionPool` makes a caller wait for a free connection (up to `pool_wait_seconds`) instead
of opening one more, so a burst of concurrent calls stays within `REDIS_MAX_CONNECTIONS`.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis, SSLConnection
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from services.runtime.settings import RedisSettings


def create_redis(settings: RedisSettings, *, client_name: str | None = None) -> Redis:
    """A client on a new bounded pool; build it once per process and pass it to whoever needs Redis."""
    pool = BlockingConnectionPool(
        host=settings.host,
        port=settings.port,
        db=settings.db,
        password=settings.password.get_secret_value() if settings.password else None,
        max_connections=settings.max_connections,
        timeout=settings.pool_wait_seconds,
        socket_connect_timeout=settings.timeout_seconds,
        socket_timeout=settings.timeout_seconds,
        socket_keepalive=True,
        health_check_interval=15,
        client_name=client_name,
        # A short, bounded retry: callers see a failure within about two timeouts, never minutes.
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=settings.retries),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        **_tls_options(settings),
    )
    return Redis(connection_pool=pool)


def _tls_options(settings: RedisSettings) -> dict[str, Any]:
    if not settings.tls:
        return {}
    return {
        "connection_class": SSLConnection,
        "ssl_cert_reqs": "required",
        "ssl_check_hostname": True,
        "ssl_ca_certs": settings.tls_ca_file,
    }
