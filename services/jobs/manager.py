"""The Jobs API's domain: submit with validation, read, list, cancel, retry, and manage queues."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from services.jobs import metrics
from services.jobs.broker import encode_message
from services.jobs.model import Job, JobState
from services.jobs.queues import QUEUE_NAMES, PolicyBook, QueuePolicy
from services.jobs.store import JobStore
from services.runtime.errors import InvalidArgumentError

JOB_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")
MAX_DELAY_MS = 30 * 24 * 3600 * 1000
MAX_PRIORITY = 2_097_152  # BullMQ's range
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


@dataclass(frozen=True)
class SubmitRequest:
    queue: str
    task: str
    payload: dict[str, Any]
    job_id: str = ""
    delay_ms: int = 0
    priority: int = 0
    max_attempts: int = 0


@dataclass(frozen=True)
class QueueInfo:
    name: str
    paused: bool
    counts: dict[JobState, int]
    policy: QueuePolicy


class JobManager:
    def __init__(
        self,
        store: JobStore,
        policies: PolicyBook,
        *,
        tasks_for: Callable[[str], Sequence[str]],
        max_payload_bytes: int,
    ) -> None:
        self._store = store
        self._policies = policies
        self._tasks_for = tasks_for
        self._max_payload_bytes = max_payload_bytes

    async def submit(self, request: SubmitRequest) -> Job:
        queue = _known_queue(request.queue)
        tasks = self._tasks_for(queue)
        if request.task not in tasks:
            raise InvalidArgumentError.for_field(
                "task",
                f"no task {request.task!r} on queue {queue!r}; use one of: {', '.join(tasks) or '(none)'}",
            )
        encoded = json.dumps(request.payload)
        if len(encoded.encode()) > self._max_payload_bytes:
            raise InvalidArgumentError.for_field(
                "payload",
                f"{len(encoded.encode())} bytes is over the limit of {self._max_payload_bytes}; "
                "store large inputs elsewhere and pass a reference",
            )
        if request.job_id and not JOB_ID_PATTERN.match(request.job_id):
            raise InvalidArgumentError.for_field(
                "job_id", "use 1 to 128 letters, digits and . _ : - (or leave it empty for a generated id)"
            )
        _within("delay_ms", request.delay_ms, 0, MAX_DELAY_MS)
        _within("priority", request.priority, 0, MAX_PRIORITY)
        _within("max_attempts", request.max_attempts, 0, 100)
        job_id = request.job_id or self._store.new_id()
        job, created = await self._store.submit(
            queue=queue,
            task=request.task,
            payload=request.payload,
            message=encode_message(job_id, queue, request.task, request.payload),
            job_id=job_id,
            priority=request.priority,
            max_attempts=request.max_attempts or self._policies[queue].max_attempts,
            delay_ms=request.delay_ms,
        )
        if created:
            metrics.observe_submitted(queue)
        return job

    async def get(self, job_id: str) -> Job:
        return await self._store.get(_required_id(job_id))

    async def list_jobs(
        self, *, queue: str, state: JobState | None, search: str, page_size: int, page_token: str
    ) -> tuple[list[Job], str]:
        queues = [_known_queue(queue)] if queue else list(QUEUE_NAMES)
        _within("page_size", page_size, 0, MAX_PAGE_SIZE)
        if len(search) > 200:
            raise InvalidArgumentError.for_field("search", "at most 200 characters")
        return await self._store.list_jobs(
            queues=queues,
            state=state,
            search=search,
            page_size=page_size or DEFAULT_PAGE_SIZE,
            page_token=page_token,
        )

    async def cancel(self, job_id: str) -> Job:
        return await self._store.cancel(_required_id(job_id))

    async def retry(self, job_id: str) -> Job:
        return await self._store.retry(_required_id(job_id))

    async def queues(self) -> list[QueueInfo]:
        return [await self.queue(name) for name in QUEUE_NAMES]

    async def queue(self, name: str) -> QueueInfo:
        queue = _known_queue(name)
        return QueueInfo(
            name=queue,
            paused=await self._store.is_paused(queue),
            counts=await self._store.counts(queue),
            policy=self._policies[queue],
        )

    async def pause(self, name: str, paused: bool) -> QueueInfo:
        await self._store.set_paused(_known_queue(name), paused)
        return await self.queue(name)

    async def clean(self, name: str, state: JobState | None, older_than_seconds: int, limit: int) -> int:
        queue = _known_queue(name)
        if state is None:
            raise InvalidArgumentError.for_field(
                "state", "name the finished state to clean: COMPLETED, FAILED, CANCELLED or DEAD_LETTERED"
            )
        _within("older_than_seconds", older_than_seconds, 0, 10 * 365 * 86400)
        _within("limit", limit, 0, 100_000)
        return await self._store.remove_finished(
            queue, state, max_age_ms=older_than_seconds * 1000, limit=limit or 100_000
        )


def _known_queue(queue: str) -> str:
    if queue not in QUEUE_NAMES:
        raise InvalidArgumentError.for_field(
            "queue", f"unknown queue {queue!r}; use one of: {', '.join(QUEUE_NAMES)}"
        )
    return queue


def _required_id(job_id: str) -> str:
    if not job_id:
        raise InvalidArgumentError.for_field("id", "give the job's id (as returned by SubmitJob)")
    if not JOB_ID_PATTERN.match(job_id):
        raise InvalidArgumentError.for_field("id", "not a job id: 1 to 128 letters, digits and . _ : -")
    return job_id


def _within(field: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise InvalidArgumentError.for_field(field, f"{value} is out of range; use {low} to {high}")
