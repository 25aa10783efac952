"""What a running task knows of its job: its id, attempt, progress reporting and cancellation.

A task asks for it with taskiq's dependency injection:
`async def my_task(..., job: JobContext = TaskiqDepends(current_job))`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from taskiq import Context, TaskiqDepends

from services.runtime.errors import JobError


class JobCancelledError(JobError):
    """Raised by a task that stops because its job was cancelled."""

    reason = "JOB_CANCELLED"
    retryable = False


class JobContext:
    def __init__(
        self,
        job_id: str,
        queue: str,
        *,
        attempt: int,
        deliveries: int,
        report_progress: Callable[[Any], Awaitable[bool]],
    ) -> None:
        self.job_id = job_id
        self.queue = queue
        self.attempt = attempt
        self.deliveries = deliveries
        self.cancelled = asyncio.Event()
        self._report_progress = report_progress

    async def set_progress(self, progress: Any) -> None:
        """Records progress (a number 0-100 or a JSON object); GetJobStatus shows it."""
        await self._report_progress(progress)

    def raise_if_cancelled(self) -> None:
        if self.cancelled.is_set():
            raise JobCancelledError(f"job {self.job_id} was cancelled")

    async def sleep(self, seconds: float) -> None:
        """Sleeps `seconds`, or raises `JobCancelledError` as soon as the job is cancelled."""
        try:
            await asyncio.wait_for(self.cancelled.wait(), timeout=seconds)
        except TimeoutError:
            return
        self.raise_if_cancelled()


def current_job(context: Context = TaskiqDepends()) -> JobContext:
    """The dependency a task declares to get its `JobContext`."""
    job_context: JobContext = context.broker.job_context(context.message.task_id)  # type: ignore[attr-defined]
    return job_context
