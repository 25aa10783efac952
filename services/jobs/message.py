"""The taskiq message a worker runs for a job: the payload becomes the task's keyword arguments."""

from __future__ import annotations

from typing import Any

from taskiq import TaskiqMessage
from taskiq.formatters.json_formatter import JSONFormatter

FORMATTER = JSONFormatter()


def encode_message(job_id: str, queue: str, task: str, payload: dict[str, Any]) -> bytes:
    message = TaskiqMessage(task_id=job_id, task_name=task, labels={"queue": queue}, args=[], kwargs=payload)
    return FORMATTER.dumps(message).message
