"""Health follows the dependencies: NOT_SERVING while one is unreachable, SERVING again when it is back."""

from __future__ import annotations

from grpc_health.v1 import health_pb2
from grpc_health.v1.health import aio as health_aio

from services.runtime.health import NOT_SERVING, SERVING, HealthMonitor


class _Switch:
    """A dependency probe the test turns on and off."""

    def __init__(self) -> None:
        self.up = True

    async def __call__(self) -> None:
        if not self.up:
            raise ConnectionError("down")


async def _status(servicer: health_aio.HealthServicer, service: str) -> int:
    response = await servicer.Check(health_pb2.HealthCheckRequest(service=service), None)
    status: int = response.status
    return status


async def test_status_follows_the_dependency() -> None:
    servicer = health_aio.HealthServicer()
    redis = _Switch()
    monitor = HealthMonitor(
        servicer, probes={"redis": redis}, dependent_services=["svc.A"], independent_services=["svc.B"]
    )
    await monitor.check_once()
    assert await _status(servicer, "") == SERVING
    assert await _status(servicer, "svc.A") == SERVING

    redis.up = False
    await monitor.check_once()
    assert await _status(servicer, "") == NOT_SERVING
    assert await _status(servicer, "svc.A") == NOT_SERVING
    assert await _status(servicer, "svc.B") == SERVING, "a service that needs no Redis keeps serving"

    redis.up = True
    await monitor.check_once()
    assert await _status(servicer, "svc.A") == SERVING


async def test_shutdown_is_final() -> None:
    servicer = health_aio.HealthServicer()
    monitor = HealthMonitor(servicer, probes={"redis": _Switch()}, dependent_services=["svc.A"])
    await monitor.check_once()
    await monitor.enter_shutdown()
    await monitor.check_once()
    assert await _status(servicer, "svc.A") == NOT_SERVING
    assert await _status(servicer, "") == NOT_SERVING
