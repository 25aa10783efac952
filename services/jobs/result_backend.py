"""The result backend of Switchboard's broker: records each attempt's outcome in the job store.

taskiq calls `set_result` when a task returns or raises; the outcome becomes one `finish` transition:
the result (bounded in size, JSON only), or the error (retried per the queue's backoff unless it is not
retryable), or, for a task whose upstream rate limited it, a hold of the whole queue.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from dataclasses import dataclass
from typing import Any

from taskiq import AsyncResultBackend, TaskiqResult

from services.jobs import metrics
from services.jobs.context import JobCancelledError, JobContext
from services.jobs.model import AttemptError, JobState
from services.jobs.persistence import persist
from services.jobs.queues import PolicyBook
from services.jobs.store import ClaimedJob, JobStore
from services.runtime.errors import NonRetryableError, RateLimitedError

logger = logging.getLogger(__name__)

MAX_TRACEBACK_CHARS = 4000
DEFAULT_MAX_RESULT_BYTES = 1024 * 1024


@dataclass
class InFlight:
    """A job this worker runs now."""

    queue: str
    context: JobContext
    claimed: ClaimedJob


class JobResultBackend(AsyncResultBackend[Any]):
    def __init__(
        self,
        store: JobStore,
        policies: PolicyBook,
        worker_id: str,
        *,
        max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES,
    ) -> None:
        self._store = store
        self._policies = policies
        self._worker_id = worker_id
        self._max_result_bytes = max_result_bytes
        self.in_flight: dict[str, InFlight] = {}

    async def set_result(self, task_id: str, result: TaskiqResult[Any]) -> None:
        running = self.in_flight.get(task_id)
        if running is None:
            return
        queue = running.queue
        error = attempt_error(result, self._max_result_bytes)
        retry_delay_ms = 0
        if isinstance(result.error, RateLimitedError):
            hold_ms = max(1, int(result.error.retry_after_seconds * 1000))
            logger.warning(
                "upstream rate limited: the queue holds",
                extra={"job_id": task_id, "queue": queue, "hold_ms": hold_ms},
            )
            outcome: dict[str, Any] = {"hold_ms": hold_ms}
            error = None
        elif error is None:
            outcome = {"result": result.return_value}
        else:
            attempt = running.claimed.attempts + 1
            retry_delay_ms = self._policies[queue].backoff.delay_ms(attempt)
            outcome = {"error": error, "retry_delay_ms": retry_delay_ms}
        finished = await persist(
            lambda: self._store.finish(running.claimed, **outcome),
            what=f"outcome of job {task_id}",
            give_up_after=self._policies[queue].lease_ms / 1000,
        )
        run_seconds = time.time() - running.claimed.started_at_ms / 1000
        if finished is None or finished.state is None:
            logger.warning(
                "outcome not recorded: the job is no longer this worker's (its lease ran out)",
                extra={"job_id": task_id, "queue": queue},
            )
            return
        metrics.observe_finished(queue, finished.state.value, run_seconds)
        if error is not None:
            logger.warning(
                "attempt failed",
                extra={
                    "job_id": task_id, "queue": queue, "task": running.claimed.task,
                    "attempt": finished.attempts, "error_type": error.type, "error": error.message,
                    "retryable": error.retryable, "next_state": finished.state.value,
                    "retry_in_ms": retry_delay_ms if finished.state is JobState.DELAYED else None,
                },
            )  # fmt: skip

    async def is_result_ready(self, task_id: str) -> bool:
        """Ready once the job finished, whichever way (taskiq then reads its result or its error)."""
        return (await self._store.get(task_id)).state.finished

    async def get_result(self, task_id: str, with_logs: bool = False) -> TaskiqResult[Any]:
        job = await self._store.get(task_id)
        error = None
        if job.state is not JobState.COMPLETED and job.error is not None:
            error = RuntimeError(f"{job.error.type}: {job.error.message}")
        return TaskiqResult(
            is_err=error is not None, return_value=job.result, execution_time=0.0, error=error
        )


def attempt_error(result: TaskiqResult[Any], max_result_bytes: int) -> AttemptError | None:
    """What went wrong with an attempt, or None when it succeeded with a result the job can keep."""
    error = result.error
    if not result.is_err or error is None:
        try:
            size = len(json.dumps(result.return_value).encode())
        except (TypeError, ValueError) as problem:
            return AttemptError(
                type="ResultNotSerializable",
                message=f"the task returned a value that is not JSON: {problem}",
                retryable=False,
            )
        if size > max_result_bytes:
            return AttemptError(
                type="ResultTooLarge",
                message=f"the task returned {size} bytes of JSON, over the limit of {max_result_bytes} "
                "(MAX_RESULT_BYTES); store large results elsewhere and return a reference",
                retryable=False,
            )
        return None
    retryable = not isinstance(error, NonRetryableError | JobCancelledError)
    trace = "".join(traceback.format_exception(error))[-MAX_TRACEBACK_CHARS:]
    message = str(error) or type(error).__name__
    if isinstance(error, TimeoutError):
        message = str(error) or "the attempt ran longer than its queue's timeout"
    return AttemptError(type=type(error).__name__, message=message, retryable=retryable, traceback=trace)
