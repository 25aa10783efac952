"""The Jobs API's domain: submit with validation, read, list, cancel, retry, manage queues, list workers.

A submitted job may name a task the code knows or one a live worker registered (services.jobs.registry):
a team's task modules are imported into its workers only.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import enum
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace

from services.jobs import metrics
from services.jobs.model import Job, JobFilter, JobState, LogLine
from services.jobs.queue_history import MAX_RANGE_MS, MinuteMetrics, QueueHistory
from services.jobs.queues import QUEUE_NAMES, PolicyBook, QueuePolicy
from services.jobs.registry import LiveWorkers, WorkerRecord, WorkersView
from services.jobs.search_index import MAX_QUERY_WORDS, words_of
from services.jobs.store import JobStore
from services.jobs.submission import JOB_ID_PATTERN, Submission, known_queue, validate_submission, within
from services.runtime.errors import InvalidArgumentError, NotFoundError, SwitchboardError

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
DEFAULT_LOG_PAGE_SIZE = 200
MAX_LOG_PAGE_SIZE = 1000
MAX_BULK_IDS = 1000
MAX_BULK_FAILURES = 100
# Jobs one step of a bulk action by filter reads, and acts on concurrently at most.
BULK_CHUNK = 500
BULK_CONCURRENCY = 50
DEFAULT_METRICS_RANGE_MS = 3600 * 1000


class BulkAction(enum.Enum):
    RETRY = "retry"
    CANCEL = "cancel"
    REMOVE = "remove"
    PROMOTE = "promote"


# The states each action applies to; a job in another state is skipped.
APPLIES_TO: dict[BulkAction, frozenset[JobState]] = {
    BulkAction.RETRY: frozenset({JobState.FAILED, JobState.CANCELLED, JobState.DEAD_LETTERED}),
    BulkAction.CANCEL: frozenset({JobState.WAITING, JobState.DELAYED, JobState.ACTIVE}),
    BulkAction.REMOVE: frozenset(JobState) - {JobState.ACTIVE},
    BulkAction.PROMOTE: frozenset({JobState.DELAYED}),
}


@dataclass(frozen=True)
class SearchText:
    """What a search or a bulk filter asks for, as the caller gave it."""

    queue: str = ""
    states: frozenset[JobState] = frozenset()
    job_id: str = ""
    task: str = ""
    payload_text: str = ""
    error_text: str = ""
    created_after_ms: int | None = None
    created_before_ms: int | None = None


@dataclass(frozen=True)
class BulkFailure:
    id: str
    reason: str
    message: str


@dataclass
class BulkOutcome:
    dry_run: bool
    affected: int = 0
    skipped: int = 0
    failures: list[BulkFailure] = field(default_factory=list)
    more_remain: bool = False
    affected_is_lower_bound: bool = False

    def fail(self, failure: BulkFailure) -> None:
        self.skipped += 1
        if len(self.failures) < MAX_BULK_FAILURES:
            self.failures.append(failure)


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
        history: QueueHistory | None = None,
        bulk_max_jobs: int = 10_000,
    ) -> None:
        """`tasks_for`: the tasks the code knows per queue; `workers`: the registry's cached view, kept
        fresh by the caller (`LiveWorkers.refresh` in a background loop), adds the live workers' tasks."""
        self._store = store
        self._policies = policies
        self._workers = workers
        self._tasks_for = _switched_on(workers.tasks_with(tasks_for), policies)
        self._max_payload_bytes = max_payload_bytes
        self._history = history or QueueHistory(store.redis, prefix=store.prefix)
        self._bulk_max_jobs = bulk_max_jobs

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

    async def remove(self, job_id: str) -> JobState:
        return await self._store.remove(_required_id(job_id))

    async def promote(self, job_id: str) -> Job:
        return await self._store.promote(_required_id(job_id))

    async def duplicate(self, job_id: str) -> Job:
        """A new job (new id) of the same queue, task, payload, priority and max attempts, checked as any
        submission is (the task must still be one the queue accepts)."""
        original = await self.get(job_id)
        return await self.submit(
            SubmitRequest(
                queue=original.queue,
                task=original.task,
                payload=original.payload,
                priority=original.priority,
                max_attempts=original.max_attempts,
            )
        )

    async def search(
        self, text: SearchText, *, page_size: int, page_token: str
    ) -> tuple[list[Job], str, int, bool]:
        """→ (jobs newest created first, next page token or "", total, whether the total is exact)."""
        within("page_size", page_size, 0, MAX_PAGE_SIZE)
        return await self._store.search(
            _filter(text), page_size=page_size or DEFAULT_PAGE_SIZE, page_token=page_token
        )

    async def bulk(
        self, action: BulkAction | None, *, ids: Sequence[str], text: SearchText | None, dry_run: bool
    ) -> BulkOutcome:
        """Applies `action` to the jobs listed, or else to those matching `text` (at most the bulk limit per
        call, in chunks; `more_remain` says to call again)."""
        if action is None:
            raise InvalidArgumentError.for_field("action", "choose RETRY, CANCEL, REMOVE or PROMOTE")
        if ids and text is not None:
            raise InvalidArgumentError.for_field("filter", "give either ids or a filter, not both")
        if ids:
            if len(ids) > MAX_BULK_IDS:
                raise InvalidArgumentError.for_field("ids", f"at most {MAX_BULK_IDS}; use a filter for more")
            return await self._bulk_ids(
                action, [_required_id(job_id) for job_id in dict.fromkeys(ids)], dry_run
            )
        if text is None:
            raise InvalidArgumentError.for_field(
                "filter", "give the jobs' ids or a filter (e.g. a queue and states: [FAILED])"
            )
        return await self._bulk_filter(action, _filter(text), dry_run)

    async def _bulk_ids(self, action: BulkAction, ids: list[str], dry_run: bool) -> BulkOutcome:
        outcome = BulkOutcome(dry_run=dry_run)
        if dry_run:

            async def state_of(job_id: str) -> JobState | NotFoundError:
                try:
                    return (await self._store.get(job_id)).state
                except NotFoundError as error:
                    return error

            for start in range(0, len(ids), BULK_CONCURRENCY):
                chunk = ids[start : start + BULK_CONCURRENCY]
                for job_id, state in zip(chunk, await asyncio.gather(*map(state_of, chunk)), strict=True):
                    if isinstance(state, NotFoundError):
                        outcome.fail(BulkFailure(job_id, state.reason, state.message))
                    elif state in APPLIES_TO[action]:
                        outcome.affected += 1
                    else:
                        outcome.fail(_not_applicable(action, job_id, state))
            return outcome
        await self._apply(action, [(job_id, "") for job_id in ids], outcome)
        return outcome

    async def _bulk_filter(self, action: BulkAction, query: JobFilter, dry_run: bool) -> BulkOutcome:
        outcome = BulkOutcome(dry_run=dry_run)
        applicable = (query.states or frozenset(JobState)) & APPLIES_TO[action]
        _, _, matching, _ = await self._store.search(query, page_size=1)
        if not applicable:
            outcome.skipped = matching
            return outcome
        target = replace(query, states=applicable)
        _, _, total, exact = await self._store.search(target, page_size=1)
        outcome.skipped = max(matching - total, 0)
        if dry_run:
            outcome.affected = min(total, self._bulk_max_jobs)
            outcome.affected_is_lower_bound = not exact and total < self._bulk_max_jobs
            outcome.more_remain = total > self._bulk_max_jobs
            return outcome
        processed, token = 0, ""
        while processed < self._bulk_max_jobs:
            jobs, token, _, _ = await self._store.search(
                target, page_size=min(BULK_CHUNK, self._bulk_max_jobs - processed), page_token=token
            )
            await self._apply(action, [(job.id, job.queue) for job in jobs], outcome)
            processed += len(jobs)
            if not token:
                break
        outcome.more_remain = bool(token)
        return outcome

    async def _apply(self, action: BulkAction, jobs: Sequence[tuple[str, str]], outcome: BulkOutcome) -> None:
        """Runs the action's own transition on each job (`queue` "" when unknown), a bounded number at once;
        a job the transition refuses counts as skipped, with the reason."""
        operations: dict[BulkAction, Callable[[str, str], Awaitable[object]]] = {
            BulkAction.RETRY: lambda job_id, queue: self._store.retry(job_id, queue=queue),
            BulkAction.CANCEL: lambda job_id, queue: self._store.cancel(job_id, queue=queue),
            BulkAction.REMOVE: lambda job_id, queue: self._store.remove(job_id, queue=queue),
            BulkAction.PROMOTE: lambda job_id, queue: self._store.promote(job_id, queue=queue),
        }
        operate = operations[action]

        async def one(job_id: str, queue: str) -> BulkFailure | None:
            try:
                await operate(job_id, queue)
            except SwitchboardError as error:
                if not error.reason.startswith("JOB_"):
                    raise
                return BulkFailure(job_id, error.reason, error.message)
            return None

        for start in range(0, len(jobs), BULK_CONCURRENCY):
            chunk = jobs[start : start + BULK_CONCURRENCY]
            for failure in await asyncio.gather(*(one(job_id, queue) for job_id, queue in chunk)):
                if failure is None:
                    outcome.affected += 1
                else:
                    outcome.fail(failure)

    async def queue_metrics(self, name: str, start_ms: int | None, end_ms: int | None) -> list[MinuteMetrics]:
        queue = known_queue(name)
        end = end_ms if end_ms is not None else await self._history.now_ms()
        start = start_ms if start_ms is not None else end - DEFAULT_METRICS_RANGE_MS
        if start > end:
            raise InvalidArgumentError.for_field("start_time", "must be before end_time")
        if end - start > MAX_RANGE_MS:
            raise InvalidArgumentError.for_field("end_time", "at most 24 hours after start_time")
        return await self._history.minutes(queue, start, end)

    async def job_logs(
        self, job_id: str, *, page_size: int, page_token: str
    ) -> tuple[list[LogLine], str, int]:
        """→ (lines oldest first, next page token or "", lines dropped past the cap)."""
        within("page_size", page_size, 0, MAX_LOG_PAGE_SIZE)
        count = page_size or DEFAULT_LOG_PAGE_SIZE
        offset = _decode_offset(page_token)
        lines, kept, dropped = await self._store.logs(_required_id(job_id), offset=offset, count=count)
        following = offset + len(lines)
        return lines, _encode_offset(following) if following < kept else "", dropped

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


def _filter(text: SearchText) -> JobFilter:
    """The caller's filter, checked and bounded, as the store's query."""
    queues = (known_queue(text.queue),) if text.queue else tuple(QUEUE_NAMES)
    if text.job_id and not JOB_ID_PATTERN.match(text.job_id):
        raise InvalidArgumentError.for_field("job_id", "not a job id: 1 to 128 letters, digits and . _ : -")
    if len(text.task) > 200:
        raise InvalidArgumentError.for_field("task", "at most 200 characters")
    if (
        text.created_after_ms is not None
        and text.created_before_ms is not None
        and text.created_after_ms >= text.created_before_ms
    ):
        raise InvalidArgumentError.for_field("created_after", "must be before created_before")
    return JobFilter(
        queues=queues,
        states=text.states,
        job_id=text.job_id,
        task=text.task,
        payload_words=_query_words("payload_text", text.payload_text),
        error_words=_query_words("error_text", text.error_text),
        created_after_ms=text.created_after_ms,
        created_before_ms=text.created_before_ms,
    )


def _query_words(field_name: str, text: str) -> tuple[str, ...]:
    if not text:
        return ()
    if len(text) > 500:
        raise InvalidArgumentError.for_field(field_name, "at most 500 characters")
    words = words_of(text, limit=MAX_QUERY_WORDS + 1)
    if not words:
        raise InvalidArgumentError.for_field(
            field_name, "give whole words of at least 2 letters or digits; punctuation is not searchable"
        )
    if len(words) > MAX_QUERY_WORDS:
        raise InvalidArgumentError.for_field(field_name, f"at most {MAX_QUERY_WORDS} words")
    return tuple(words)


def _not_applicable(action: BulkAction, job_id: str, state: JobState) -> BulkFailure:
    allowed = ", ".join(sorted(s.name for s in APPLIES_TO[action]))
    return BulkFailure(
        job_id,
        "JOB_STATE_NOT_APPLICABLE",
        f"job {job_id} is {state.name}; {action.name} applies to {allowed}",
    )


def _encode_offset(offset: int) -> str:
    return base64.urlsafe_b64encode(f"log:{offset}".encode()).decode()


def _decode_offset(token: str) -> int:
    if not token:
        return 0
    try:
        kind, offset = base64.urlsafe_b64decode(token.encode()).decode().split(":")
        if kind != "log" or int(offset) < 0:
            raise ValueError(token)
        return int(offset)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidArgumentError.for_field(
            "page_token", "not a token this API returned; start again without one"
        ) from None


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
