"""The Jobs API's domain: submit with validation, read, list, cancel, retry, manage queues, list workers.

A submitted job may name a task the code knows or one a live worker registered (services.jobs.registry):
a team's task modules are imported into its workers only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from services.jobs import metrics
from services.jobs.model import Job, JobState
from services.jobs.queues import QUEUE_NAMES, PolicyBook, QueuePolicy
from services.jobs.registry import LiveWorkers, WorkerRecord, WorkersView
from services.jobs.store import JobStore
from services.jobs.submission import JOB_ID_PATTERN, Submission, known_queue, validate_submission, within
from services.runtime.errors import InvalidArgumentError

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


SubmitRequest = Submission
"""What SubmitJob asks for (the same checks as every other way a job is submitted)."""


@dataclass(frozen=True)
class QueueInfo:
    name: str
    paused: bool
    counts: dict[JobState, int]
    policy: QueuePolicy
    workers: int
    """Live workers serving the queue."""


class JobManager:
    def __init__(
        self,
        store: JobStore,
        policies: PolicyBook,
        *,
        tasks_for: Callable[[str], Sequence[str]],
        workers: LiveWorkers,
        max_payload_bytes: int,
    ) -> None:
        """`tasks_for`: the tasks the code knows per queue; `workers`: the registry's cached view, kept
        fresh by the caller (`LiveWorkers.refresh` in a background loop), adds the live workers' tasks."""
        self._store = store
        self._policies = policies
        self._workers = workers
        self._tasks_for = _switched_on(workers.tasks_with(tasks_for), policies)
        self._max_payload_bytes = max_payload_bytes

    async def submit(self, request: SubmitRequest) -> Job:
        valid = validate_submission(
            request,
            tasks_for=self._tasks_for,
            max_payload_bytes=self._max_payload_bytes,
            new_id=self._store.new_id,
        )
        job, created = await self._store.submit(
            queue=valid.queue,
            task=valid.task,
            payload=valid.payload,
            message=valid.message,
            job_id=valid.job_id,
            priority=valid.priority,
            max_attempts=valid.max_attempts or self._policies[valid.queue].max_attempts,
            delay_ms=valid.delay_ms,
        )
        if created:
            metrics.observe_submitted(valid.queue)
        return job

    async def get(self, job_id: str) -> Job:
        return await self._store.get(_required_id(job_id))

    async def list_jobs(
        self, *, queue: str, state: JobState | None, search: str, page_size: int, page_token: str
    ) -> tuple[list[Job], str]:
        queues = [known_queue(queue)] if queue else list(QUEUE_NAMES)
        within("page_size", page_size, 0, MAX_PAGE_SIZE)
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
        workers = await self._workers.refresh()
        return [await self.queue(name, workers) for name in QUEUE_NAMES]

    async def queue(self, name: str, workers: WorkersView | None = None) -> QueueInfo:
        queue = known_queue(name)
        if workers is None:
            workers = await self._workers.refresh()
        return QueueInfo(
            name=queue,
            paused=await self._store.is_paused(queue),
            counts=await self._store.counts(queue),
            policy=self._policies[queue],
            workers=workers.serving(queue),
        )

    async def list_workers(self, *, queue: str) -> list[WorkerRecord]:
        """The live workers (serving `queue`, if given), the most recent heartbeat first."""
        if queue:
            known_queue(queue)
        workers = (await self._workers.refresh()).workers
        return [worker for worker in workers if not queue or queue in worker.queues]

    async def pause(self, name: str, paused: bool) -> QueueInfo:
        await self._store.set_paused(known_queue(name), paused)
        return await self.queue(name)

    async def clean(self, name: str, state: JobState | None, older_than_seconds: int, limit: int) -> int:
        queue = known_queue(name)
        if state is None:
            raise InvalidArgumentError.for_field(
                "state", "name the finished state to clean: COMPLETED, FAILED, CANCELLED or DEAD_LETTERED"
            )
        within("older_than_seconds", older_than_seconds, 0, 10 * 365 * 86400)
        within("limit", limit, 0, 100_000)
        return await self._store.remove_finished(
            queue, state, max_age_ms=older_than_seconds * 1000, limit=limit or 100_000
        )


def _required_id(job_id: str) -> str:
    if not job_id:
        raise InvalidArgumentError.for_field("id", "give the job's id (as returned by SubmitJob)")
    if not JOB_ID_PATTERN.match(job_id):
        raise InvalidArgumentError.for_field("id", "not a job id: 1 to 128 letters, digits and . _ : -")
    return job_id


def _switched_on(
    tasks_for: Callable[[str], Sequence[str]], policies: PolicyBook
) -> Callable[[str], list[str]]:
    """`tasks_for` without the `diagnostics.*` tasks while the live settings switch them off (jobs already
    queued still run)."""

    def submittable(queue: str) -> list[str]:
        tasks = list(tasks_for(queue))
        if policies.diagnostics_enabled:
            return tasks
        return [task for task in tasks if not task.startswith("diagnostics.")]

    return submittable
