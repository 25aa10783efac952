"""Diagnostic tasks, on every queue when enabled: for tests, benchmarks and smoke checks through the API.

`diagnostics.echo` returns its payload; `diagnostics.sleep` sleeps `ms`, reporting progress, and stops
when cancelled; `diagnostics.fail` logs a line and fails (retryable or not, or rate limited);
`diagnostics.crash` kills its own worker process (a chaos check of crash recovery and dead-lettering).
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from taskiq import TaskiqDepends

from services.jobs.context import JobContext, current_job
from services.runtime.errors import NonRetryableError, RateLimitedError, RetryableError

PROGRESS_STEPS = 10


async def echo(**payload: Any) -> dict[str, Any]:
    return payload


async def sleep(ms: int = 1000, job: JobContext = TaskiqDepends(current_job)) -> dict[str, int]:
    started = time.monotonic()
    step = ms / 1000 / PROGRESS_STEPS
    for done in range(1, PROGRESS_STEPS + 1):
        await job.sleep(max(0.0, started + step * done - time.monotonic()))
        await job.set_progress(done * 100 // PROGRESS_STEPS)
    return {"slept_ms": ms}


async def fail(
    retryable: bool = True,
    message: str = "diagnostics.fail was asked to fail",
    retry_after_ms: int = 0,
    job: JobContext = TaskiqDepends(current_job),
) -> None:
    """Fails, writing a log line first; with `retry_after_ms` as an upstream's 429 would (the queue holds
    that long)."""
    await job.log(f"attempt {job.attempt} is about to fail: {message}", "warning")
    if retry_after_ms > 0:
        raise RateLimitedError(message, retry_after_seconds=retry_after_ms / 1000)
    if retryable:
        raise RetryableError(message)
    raise NonRetryableError(message)


async def crash() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


TASKS = {
    "diagnostics.echo": echo,
    "diagnostics.sleep": sleep,
    "diagnostics.fail": fail,
    "diagnostics.crash": crash,
}
