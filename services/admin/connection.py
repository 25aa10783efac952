"""The connection test: probe every dependency at once, time each, and report what was found.

A probe is an async callable that returns a short description of what answered, or raises. A dependency
that is not set up here has no probe and is reported NOT_CONFIGURED, which is not a failure.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

logger = logging.getLogger(__name__)

Probe = Callable[[], Awaitable[str]]


class CheckStatus(enum.Enum):
    PASSED = "passed"
    FAILED = "failed"
    NOT_CONFIGURED = "not_configured"


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: CheckStatus
    latency_ms: float
    detail: str

    @property
    def ok(self) -> bool:
        return self.status is not CheckStatus.FAILED


@dataclass(frozen=True)
class ConnectionReport:
    checks: tuple[CheckResult, ...]
    checked_at: datetime

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)


class ConnectionTester:
    """Runs every probe concurrently, each bounded by `timeout_seconds`."""

    def __init__(
        self,
        probes: Mapping[str, Probe | None],
        *,
        timeout_seconds: float,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._probes = dict(probes)
        self._timeout = timeout_seconds
        self._clock = clock

    async def run(self) -> ConnectionReport:
        checked_at = datetime.now(UTC)
        checks = await asyncio.gather(*(self._check(name, probe) for name, probe in self._probes.items()))
        report = ConnectionReport(checks=tuple(checks), checked_at=checked_at)
        failed = {check.name: check.detail for check in checks if not check.ok}
        if failed:
            logger.warning("connection test failed", extra={"failed_checks": failed})
        return report

    async def _check(self, name: str, probe: Probe | None) -> CheckResult:
        if probe is None:
            return CheckResult(name, CheckStatus.NOT_CONFIGURED, 0.0, "not configured")
        started = self._clock()
        try:
            detail = await asyncio.wait_for(probe(), self._timeout)
            status = CheckStatus.PASSED
        except TimeoutError:
            detail, status = f"no answer within {self._timeout:g} s", CheckStatus.FAILED
        except Exception as error:  # a failed probe is a finding to report, not a crash
            detail, status = _describe(error), CheckStatus.FAILED
        latency_ms = (self._clock() - started) * 1000
        return CheckResult(name, status, round(latency_ms, 3), detail)


def _describe(error: Exception) -> str:
    text = str(error).strip() or "no detail"
    return f"{type(error).__name__}: {text}"[:500]
