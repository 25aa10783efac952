"""The connection test runs every probe at once, times each, and reports failures without failing."""

from __future__ import annotations

import asyncio

from services.admin.connection import CheckStatus, ConnectionTester


async def _answers() -> str:
    return "redis 7.0 at here"


async def _refuses() -> str:
    raise ConnectionRefusedError("connection refused")


async def _hangs() -> str:
    await asyncio.Event().wait()
    return "never"


async def test_all_passing_is_ok_and_not_configured_is_not_a_failure() -> None:
    report = await ConnectionTester({"redis": _answers, "bigquery": None}, timeout_seconds=1).run()
    assert report.ok
    by_name = {check.name: check for check in report.checks}
    assert by_name["redis"].status is CheckStatus.PASSED
    assert by_name["redis"].detail == "redis 7.0 at here"
    assert by_name["bigquery"].status is CheckStatus.NOT_CONFIGURED
    assert by_name["bigquery"].ok


async def test_a_failing_probe_fails_the_report_with_what_went_wrong() -> None:
    report = await ConnectionTester({"redis": _refuses, "jobs": _answers}, timeout_seconds=1).run()
    assert not report.ok
    redis_check = next(check for check in report.checks if check.name == "redis")
    assert redis_check.status is CheckStatus.FAILED
    assert redis_check.detail == "ConnectionRefusedError: connection refused"


async def test_a_hanging_probe_is_cut_at_the_timeout_while_the_others_finish() -> None:
    report = await ConnectionTester({"slow": _hangs, "fast": _answers}, timeout_seconds=0.05).run()
    slow, fast = report.checks
    assert slow.status is CheckStatus.FAILED
    assert slow.detail == "no answer within 0.05 s"
    assert fast.status is CheckStatus.PASSED


async def test_latency_is_measured_on_the_given_clock() -> None:
    ticks = iter([10.0, 10.25])
    report = await ConnectionTester({"redis": _answers}, timeout_seconds=1, clock=lambda: next(ticks)).run()
    assert report.checks[0].latency_ms == 250.0
