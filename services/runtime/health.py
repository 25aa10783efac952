"""Composite gRPC health: SERVING only while every dependency answers, NOT_SERVING from SIGTERM on.

`HealthMonitor` probes the dependencies (Redis for every service) on an interval and sets the standard
health service's status for the overall server ("") and each service that depends on them. A service
that works without them (the connection test must answer while Redis is down) stays SERVING.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence

from grpc_health.v1 import health_pb2
from grpc_health.v1.health import OVERALL_HEALTH
from grpc_health.v1.health import aio as health_aio

logger = logging.getLogger(__name__)

Probe = Callable[[], Awaitable[object]]

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class HealthMonitor:
    """Keeps the health servicer's statuses in line with the dependencies' reachability."""

    def __init__(
        self,
        servicer: health_aio.HealthServicer,
        *,
        probes: Mapping[str, Probe],
        dependent_services: Sequence[str],
        independent_services: Sequence[str] = (),
        interval_seconds: float = 1.0,
        probe_timeout_seconds: float = 1.0,
    ) -> None:
        self._servicer = servicer
        self._probes = dict(probes)
        self._dependent = [OVERALL_HEALTH, *dependent_services]
        self._independent = list(independent_services)
        self._interval = interval_seconds
        self._timeout = probe_timeout_seconds
        self._failing: frozenset[str] | None = None
        self._shutting_down = False

    @property
    def serving(self) -> bool:
        return self._failing == frozenset()

    async def check_once(self) -> None:
        """Probes every dependency once and publishes the outcome."""
        outcomes = await asyncio.gather(*map(self._probe, self._probes.values()))
        problems = {name: problem for name, problem in zip(self._probes, outcomes, strict=True) if problem}
        failing = frozenset(problems)
        if failing == self._failing or self._shutting_down:
            return
        if failing:
            logger.warning("dependencies unreachable, NOT_SERVING", extra={"failing": problems})
        elif self._failing is not None:
            logger.info("dependencies reachable again, SERVING")
        self._failing = failing
        status = NOT_SERVING if failing else SERVING
        for service in self._dependent:
            await self._servicer.set(service, status)
        for service in self._independent:
            await self._servicer.set(service, SERVING)

    async def run(self) -> None:
        """Probes forever, every `interval_seconds`, until cancelled."""
        while True:
            await self.check_once()
            await asyncio.sleep(self._interval)

    async def enter_shutdown(self) -> None:
        """Every service NOT_SERVING, for good: load balancers stop sending before the server stops."""
        self._shutting_down = True
        await self._servicer.enter_graceful_shutdown()

    async def _probe(self, probe: Probe) -> str | None:
        """None when the dependency answered, else what went wrong."""
        try:
            await asyncio.wait_for(probe(), self._timeout)
        except TimeoutError:
            return f"no answer within {self._timeout:g} s"
        except Exception as error:  # any failure of a probe means "unreachable"; logged on transition
            return f"{type(error).__name__}: {error}"
        return None
