"""What a job submission must satisfy, whichever way it comes: the Jobs API's SubmitJob or taskiq's
`.kiq()`. One set of checks, so both paths refuse the same things with the same clear errors."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from services.jobs.message import encode_message
from services.jobs.queues import QUEUE_NAMES
from services.runtime.errors import InvalidArgumentError

JOB_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")
MAX_DELAY_MS = 30 * 24 * 3600 * 1000
MAX_PRIORITY = 2_097_152  # BullMQ's range
MAX_ATTEMPTS = 100


@dataclass(frozen=True)
class Submission:
    queue: str
    task: str
    payload: dict[str, Any]
    job_id: str = ""
    delay_ms: int = 0
    priority: int = 0
    max_attempts: int = 0
    positional_args: int = 0
    """How many positional arguments a `.kiq()` call gave: tasks take keyword arguments only."""


@dataclass(frozen=True)
class ValidSubmission:
    queue: str
    task: str
    payload: dict[str, Any]
    job_id: str
    delay_ms: int
    priority: int
    max_attempts: int
    message: bytes = field(repr=False)


def validate_submission(
    submission: Submission,
    *,
    tasks_for: Callable[[str], Sequence[str]],
    max_payload_bytes: int,
    new_id: Callable[[], str] | None = None,
) -> ValidSubmission:
    """The submission, checked and with its taskiq message; anything wrong → InvalidArgumentError."""
    queue = known_queue(submission.queue)
    tasks = tasks_for(queue)
    if submission.task not in tasks:
        raise InvalidArgumentError.for_field(
            "task",
            f"no task {submission.task!r} on queue {queue!r}; use one of: {', '.join(tasks) or '(none)'}",
        )
    if submission.positional_args:
        raise InvalidArgumentError.for_field(
            "args",
            f"{submission.positional_args} positional argument(s): a job's payload is its task's keyword "
            "arguments; call .kiq(name=value, ...)",
        )
    encoded = json.dumps(submission.payload)
    size = len(encoded.encode())
    if size > max_payload_bytes:
        raise InvalidArgumentError.for_field(
            "payload",
            f"{size} bytes is over the limit of {max_payload_bytes}; "
            "store large inputs elsewhere and pass a reference",
        )
    if submission.job_id and not JOB_ID_PATTERN.match(submission.job_id):
        raise InvalidArgumentError.for_field(
            "job_id", "use 1 to 128 letters, digits and . _ : - (or leave it empty for a generated id)"
        )
    within("delay_ms", submission.delay_ms, 0, MAX_DELAY_MS)
    within("priority", submission.priority, 0, MAX_PRIORITY)
    within("max_attempts", submission.max_attempts, 0, MAX_ATTEMPTS)
    job_id = submission.job_id or (new_id() if new_id else "")
    if not job_id:
        raise InvalidArgumentError.for_field("job_id", "give the job an id")
    return ValidSubmission(
        queue=queue,
        task=submission.task,
        payload=submission.payload,
        job_id=job_id,
        delay_ms=submission.delay_ms,
        priority=submission.priority,
        max_attempts=submission.max_attempts,
        message=encode_message(job_id, queue, submission.task, submission.payload),
    )


def known_queue(queue: str) -> str:
    if queue not in QUEUE_NAMES:
        raise InvalidArgumentError.for_field(
            "queue", f"unknown queue {queue!r}; use one of: {', '.join(QUEUE_NAMES)}"
        )
    return queue


def within(field_name: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise InvalidArgumentError.for_field(field_name, f"{value} is out of range; use {low} to {high}")
