"""What a running task knows of its job: its id, attempt, progress, log lines and cancellation.

A task asks for it with taskiq's dependency injection:
`async def my_task(..., job: JobContext = TaskiqDepends(current_job))`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import RedisError
from taskiq import Context, TaskiqDepends

from services.runtime.errors import JobError

logger = logging.getLogger(__name__)

LOG_LEVELS = ("debug", "info", "warning", "error")


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
        write_log: Callable[[str, str], Awaitable[bool]] | None = None,
    ) -> None:
        self.job_id = job_id
        self.queue = queue
        self.attempt = attempt
        self.deliveries = deliveries
        self.cancelled = asyncio.Event()
        self._report_progress = report_progress
        self._write_log = write_log

    async def set_progress(self, progress: Any) -> None:
        """Records progress (a number 0-100 or a JSON object); GetJobStatus shows it."""
        await self._report_progress(progress)

    async def log(self, message: str, level: str = "info") -> bool:
        """Adds a line to the job's log (GetJobLogs, the dashboard's job page). `level`: debug, info,
        warning or error. Lines are kept up to JOB_LOG_MAX_LINES per job, each cut to
        JOB_LOG_MAX_LINE_CHARS; → False when a line was not kept (past the cap, or Redis could not be reached:
        a log line never fails the job)."""
        if level not in LOG_LEVELS:
            raise ValueError(f"unknown log level {level!r}; use one of: {', '.join(LOG_LEVELS)}")
        if self._write_log is None:
            return False
        try:
            return await self._write_log(level, str(message))
        except (RedisError, OSError) as error:
            # A log line is not worth failing the job over: the task goes on, the line is lost.
            logger.warning("job log line not written", extra={"job_id": self.job_id, "error": str(error)})
            return False

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
