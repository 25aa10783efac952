"""Job state in Redis: every transition is one Lua script, atomic, timed by the Redis server's clock.

The key layout, and why no client-chosen id can collide with another key, is in `services.jobs.keys`.
Every script works on one queue (one hash tag), gets its keys as KEYS, and is idempotent under a re-send.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, cast

from redis.asyncio import Redis

from services.jobs.keys import QueueKeys
from services.jobs.model import AttemptError, Job, JobFilter, JobState, LogLine, Transition
from services.jobs.queues import QUEUE_NAMES
from services.jobs.search_index import DEFAULT_MAX_WORDS_PER_JOB, error_words, payload_words
from services.limit_algorithms import Throttle, lua_functions
from services.runtime.errors import (
    ConflictError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
)
from services.runtime.redis_mux import MuxScript, RedisMux

LUA_DIR = Path(__file__).with_name("lua")
KEEP_ATTEMPT_ERRORS = 50
# How many index entries one search request may examine before it returns a page token to go on.
SEARCH_SCAN_BUDGET = 5000
# SearchJobs per queue and state (search.lua) examines at most this many ids for a page, as many for the
# count: a page may come back short with a token to go on, a count as a lower bound.
SEARCH_WALK_BUDGET = 10_000


@cache
def _lua(name: str) -> str:
    # Every script gets the prelude and the limiter's algorithms (the queue throttle is the same limiter).
    parts = [(LUA_DIR / "prelude.lua").read_text(), lua_functions(), (LUA_DIR / f"{name}.lua").read_text()]
    return "\n".join(parts)


@dataclass(frozen=True)
class ClaimedJob:
    id: str
    queue: str
    message: bytes
    deliveries: int
    attempts: int
    ready_at_ms: int
    started_at_ms: int
    task: str
    more: bool = True
    """False when the claim saw no other waiting or delayed job on the queue."""
    lease_token: str = ""
    """The claim's token: only it may extend, finish or hand back the job."""


@dataclass(frozen=True)
class _QueueHits:
    queue: str
    total: int
    exact: bool
    entries: list[tuple[str, float]]
    resume: tuple[float, str] | None
    """Where the queue's walk stopped short of a full page: it examined everything above this."""


@dataclass(frozen=True)
class NothingToClaim:
    next_due_ms: int | None
    now_ms: int


@dataclass(frozen=True)
class Finished:
    state: JobState | None
    """None when the attempt's outcome came too late: the job is no longer this worker's."""
    attempts: int = 0


class JobStore:
    """Reads and moves jobs. One instance per process: transitions (scripts) go over the process's shared
    connection, reads and the rest over its redis-py client."""

    def __init__(
        self,
        redis: Redis,
        scripts: RedisMux,
        *,
        prefix: str = "sb",
        queues: Sequence[str] = QUEUE_NAMES,
        max_words_per_job: int = DEFAULT_MAX_WORDS_PER_JOB,
        log_max_lines: int = 1000,
        log_max_line_chars: int = 2000,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.queues = tuple(queues)
        self.max_words_per_job = max_words_per_job
        self.log_max_lines = log_max_lines
        self.log_max_line_chars = log_max_line_chars
        self._mux = scripts
        self._scripts: dict[str, MuxScript] = {}

    def _script(self, name: str) -> MuxScript:
        if name not in self._scripts:
            self._scripts[name] = MuxScript(self._mux, _lua(name))
        return self._scripts[name]

    async def _run(self, name: str, keys: Sequence[str], *args: str | int | bytes) -> Any:
        return await self._script(name)(keys=keys, args=args)

    def keys(self, queue: str) -> QueueKeys:
        return QueueKeys(self.prefix, queue)

    def queue_key(self, queue: str, name: str) -> str:
        return self.keys(queue).named(name)

    @property
    def cancel_channel(self) -> str:
        return f"{self.prefix}:cancel"

    # --- submitting -------------------------------------------------------------------------------

    async def submit(
        self,
        *,
        queue: str,
        task: str,
        payload: dict[str, Any],
        message: bytes,
        job_id: str,
        priority: int = 0,
        max_attempts: int,
        delay_ms: int = 0,
    ) -> tuple[Job, bool]:
        """Creates the job, or returns the existing one with that id. → (job, created)."""
        keys = self.keys(queue)
        elsewhere = await self._queue_of(job_id, exclude=queue)
        if elsewhere is not None:
            raise self._id_taken(job_id, elsewhere, None)
        reply = await self._run(
            "submit",
            [keys.base, keys.job(job_id)],
            job_id, queue, task, json.dumps(payload), message, priority, max_attempts, delay_ms,
            " ".join(payload_words(payload, limit=self.max_words_per_job)),
        )  # fmt: skip
        if reply[0] == 0:
            existing_task = _text(reply[1])
            if existing_task != task:
                raise self._id_taken(job_id, queue, existing_task)
            return await self.get(job_id), False
        # The new job as the script wrote it: no read-back (a worker may have started it by now).
        created_at = int(reply[2])
        job = Job(
            id=job_id,
            queue=queue,
            task=task,
            state=JobState(_text(reply[1])),
            payload=payload,
            priority=priority,
            max_attempts=max_attempts,
            attempts_made=0,
            deliveries=0,
            created_at_ms=created_at,
            run_at_ms=created_at + delay_ms,
            version=1,
        )
        return job, True

    @staticmethod
    def _id_taken(job_id: str, queue: str, task: str | None) -> ConflictError:
        what = f"a {task!r} job" if task else "a job"
        return ConflictError(
            f"job id {job_id!r} is already used by {what} on queue {queue!r}; choose another id",
            reason="JOB_ID_TAKEN",
            metadata={"job_id": job_id, "queue": queue},
        )

    @staticmethod
    def new_id() -> str:
        return uuid.uuid4().hex

    # --- reading ----------------------------------------------------------------------------------

    async def _queue_of(self, job_id: str, *, exclude: str = "") -> str | None:
        """The queue that holds job `job_id` (ids are unique across queues), or None."""
        candidates = [queue for queue in self.queues if queue != exclude]
        # Over the shared connection: the checks of one loop turn go out in one write, no pool checkout.
        found = await asyncio.gather(
            *(self._mux.execute("EXISTS", self.keys(queue).job(job_id)) for queue in candidates)
        )
        return next((queue for queue, hit in zip(candidates, found, strict=True) if hit), None)

    async def _located(self, job_id: str) -> str:
        queue = await self._queue_of(job_id)
        if queue is None:
            raise _not_found(job_id)
        return queue

    async def get(self, job_id: str) -> Job:
        """The job with that id, on whichever queue it is (one round trip)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for queue in self.queues:
                pipe.hgetall(self.keys(queue).job(job_id))
                pipe.lrange(self.keys(queue).errors(job_id), 0, -1)
            replies = await pipe.execute()
        for index in range(0, len(replies), 2):
            if replies[index]:
                return _job_from_hash(replies[index], replies[index + 1])
        raise _not_found(job_id)

    async def counts(self, queue: str) -> dict[JobState, int]:
        keys = self.keys(queue)
        async with self.redis.pipeline(transaction=False) as pipe:
            for state in JobState:
                pipe.zcard(keys.state_index(state.value))
            values = await pipe.execute()
        return dict(zip(JobState, (int(v) for v in values), strict=True))

    async def list_jobs(
        self,
        *,
        queues: Sequence[str],
        state: JobState | None,
        search: str = "",
        page_size: int = 50,
        page_token: str = "",
    ) -> tuple[list[Job], str]:
        """Jobs newest first across `queues`, `page_size` at a time; → (jobs, next page token or "").

        Correct while retention deletes jobs under it: a job removed between reading the index and reading
        the job is skipped and the page is filled from further down, and the token is the position of the
        last entry examined, so the next page neither repeats nor skips one. Each round reads the indexes
        only down to the point where every queue's part is known (a k-way merge), so the order is global.
        """
        cursor = _decode_token(page_token)
        index = f"s:{state.value}" if state else "all"
        found: list[Job] = []
        examined = 0
        batch = max(page_size, 200) if search else page_size
        while True:
            candidates: list[tuple[float, str]] = []
            boundary: tuple[float, str] | None = None
            for queue in queues:
                entries, more = await self._entries_before(self.queue_key(queue, index), cursor, batch)
                candidates.extend((score, job_id) for job_id, score in entries)
                if more and entries:
                    # This queue has more below its last entry: nothing under it is known to be in order.
                    last = (entries[-1][1], entries[-1][0])
                    boundary = last if boundary is None or last > boundary else boundary
            candidates.sort(reverse=True)
            safe = [entry for entry in candidates if boundary is None or entry >= boundary]
            jobs = await self._get_many(queues, [job_id for _, job_id in safe])
            for entry, job in zip(safe, jobs, strict=True):
                examined += 1
                cursor = entry
                if job is None or (search and not _matches(job, search)):
                    continue
                found.append(job)
                if len(found) == page_size:
                    return found, _encode_token(entry)
            if boundary is None:
                return found, ""
            if examined >= SEARCH_SCAN_BUDGET:
                return found, _encode_token(cursor) if cursor else ""

    async def _entries_before(
        self, key: str, cursor: tuple[float, str] | None, count: int
    ) -> tuple[list[tuple[str, float]], bool]:
        """Up to about `count` entries after the cursor, newest first; → (entries, whether the index may
        hold more below them)."""
        top: float | str = "+inf" if cursor is None else cursor[0]
        if cursor is not None:
            # Entries sharing the cursor's score (same millisecond) come back too and are skipped below.
            count += await self.redis.zcount(key, cursor[0], cursor[0])
        raw = cast(
            list[tuple[bytes, float]],
            await self.redis.zrevrangebyscore(key, top, "-inf", start=0, num=count, withscores=True),
        )
        more = len(raw) == count
        if cursor is None:
            return [(_text(member), score) for member, score in raw], more
        score, last_id = cursor
        # Equal scores are ordered by id; skip what the previous page already returned.
        entries = [
            (_text(member), s) for member, s in raw if s < score or (s == score and _text(member) < last_id)
        ]
        return entries, more

    async def _get_many(self, queues: Sequence[str], job_ids: Sequence[str]) -> list[Job | None]:
        if not job_ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                for queue in queues:
                    pipe.hgetall(self.keys(queue).job(job_id))
            hashes = await pipe.execute()
        jobs: list[Job | None] = []
        for position in range(len(job_ids)):
            found = [h for h in hashes[position * len(queues) : (position + 1) * len(queues)] if h]
            jobs.append(_job_from_hash(found[0], []) if found else None)
        return jobs

    # --- workers ----------------------------------------------------------------------------------

    async def claim(
        self,
        worker: str,
        queue: str,
        lease_ms: int,
        throttle: Throttle | None = None,
        *,
        tasks: Sequence[str],
    ) -> ClaimedJob | NothingToClaim:
        """Takes the next job of `queue` that names one of `tasks`, if its throttle allows a start now.
        Jobs of other tasks stay waiting, for workers that have them (a rolling deploy, other modules).

        The claim's token becomes the job's lease token: only this claim may extend, finish or hand back
        the job. A claim re-sent after a lost reply answers the job the first one took.
        """
        keys = self.keys(queue)
        token = uuid.uuid4().hex
        if throttle is None:
            rule: list[str | int] = ["", 0, 0, 0]
        else:
            rule = [throttle.algorithm, throttle.period_ms * 1000, throttle.limit, throttle.capacity]
        script_keys = [keys.base, keys.claim_record(worker)]
        reply = await self._run("claim", script_keys, worker, token, lease_ms, *rule, *tasks)
        if not reply[0]:
            next_due = int(reply[1])
            return NothingToClaim(next_due_ms=next_due if next_due >= 0 else None, now_ms=int(reply[2]))
        return ClaimedJob(
            id=_text(reply[0]),
            queue=queue,
            message=reply[1],
            deliveries=int(reply[2]),
            attempts=int(reply[3]),
            ready_at_ms=int(reply[4]),
            started_at_ms=int(reply[5]),
            task=_text(reply[6]),
            more=bool(int(reply[7])),
            lease_token=token,
        )

    async def heartbeat(self, queue: str, jobs: Sequence[ClaimedJob], lease_ms: int) -> dict[str, str]:
        """Extends the leases of `jobs` (all of `queue`); → {id: 'cancel' | 'lost'} for jobs to stop."""
        if not jobs:
            return {}
        keys = self.keys(queue)
        flat = [item for job in jobs for item in (job.id, job.lease_token)]
        reply = await self._run(
            "heartbeat", [keys.base, *(keys.job(job.id) for job in jobs)], lease_ms, *flat
        )
        return {_text(reply[i]): _text(reply[i + 1]) for i in range(0, len(reply), 2)}

    async def finish(
        self,
        job: ClaimedJob,
        *,
        result: Any = None,
        error: AttemptError | None = None,
        retry_delay_ms: int = 0,
        hold_ms: int = 0,
    ) -> Finished:
        """Records an attempt's outcome: its result, or its error (retried after `retry_delay_ms` if the
        policy allows), or with `hold_ms` a rate-limited upstream (the job waits again, the queue holds)."""
        keys = self.keys(job.queue)
        script_keys = [keys.base, keys.job(job.id), keys.errors(job.id)]
        lease = (job.id, "", job.lease_token)
        if hold_ms:
            reply = await self._run(
                "finish", script_keys, *lease, 0, "", "{}", 0, 0, KEEP_ATTEMPT_ERRORS, hold_ms
            )
        elif error is None:
            reply = await self._run(
                "finish", script_keys, *lease, 1, json.dumps(result), "", 0, 0, KEEP_ATTEMPT_ERRORS
            )
        else:
            encoded = json.dumps(
                {"type": error.type, "message": error.message, "retryable": error.retryable,
                 "traceback": error.traceback}
            )  # fmt: skip
            words = error_words(error.type, error.message, limit=self.max_words_per_job)
            reply = await self._run(
                "finish", script_keys, *lease, 0, "", encoded, int(error.retryable), retry_delay_ms,
                KEEP_ATTEMPT_ERRORS, 0, " ".join(words),
            )  # fmt: skip
        if _text(reply[0]) == "stale":
            return Finished(state=None)
        return Finished(state=JobState(_text(reply[0])), attempts=int(reply[1]))

    async def release(self, jobs: Sequence[ClaimedJob]) -> int:
        """Hands `jobs` back to their queues, WAITING, the delivery not counted. → how many were."""
        released = 0
        by_queue: dict[str, list[ClaimedJob]] = {}
        for job in jobs:
            by_queue.setdefault(job.queue, []).append(job)
        for queue, queued in by_queue.items():
            keys = self.keys(queue)
            flat = [item for job in queued for item in (job.id, job.lease_token)]
            released += int(
                await self._run("release", [keys.base, *(keys.job(job.id) for job in queued)], "", *flat)
            )
        return released

    async def reclaim_expired(
        self, queue: str, max_deliveries: int, limit: int = 100
    ) -> tuple[int, list[str]]:
        """→ (jobs requeued, ids dead-lettered) among the jobs whose lease ran out."""
        reply = await self._run(
            "reclaim", [self.keys(queue).base], max_deliveries, limit, KEEP_ATTEMPT_ERRORS
        )
        return int(reply[0]), [_text(item) for item in reply[1:]]

    async def set_progress(self, job: ClaimedJob, progress: Any) -> bool:
        keys = self.keys(job.queue)
        return bool(
            await self._run("progress", [keys.base, keys.job(job.id)], job.lease_token, json.dumps(progress))
        )

    async def remove_finished(
        self, queue: str, state: JobState, *, max_age_ms: int = -1, keep_count: int = -1, limit: int = 1000
    ) -> int:
        """Removes up to `limit` finished jobs of `state` past the age or count; → how many."""
        if not state.finished:
            raise InvalidArgumentError.for_field(
                "state", f"only finished jobs can be removed, not {state.name}; use COMPLETED, FAILED, "
                "CANCELLED or DEAD_LETTERED"
            )  # fmt: skip
        keys = self.keys(queue)
        return int(
            await self._run(
                "remove", [keys.base, keys.state_index(state.value)], max_age_ms, keep_count, limit
            )
        )

    # --- operators --------------------------------------------------------------------------------

    async def cancel(self, job_id: str, *, queue: str = "") -> Job:
        """`queue`: where the job is, when the caller knows (else it is looked up)."""
        return await self._operate(
            "cancel", job_id, "JOB_ALREADY_FINISHED", "is already {state} and cannot be cancelled",
            self.cancel_channel, queue=queue,
        )  # fmt: skip

    async def retry(self, job_id: str, *, queue: str = "") -> Job:
        return await self._operate(
            "retry", job_id, "JOB_NOT_RETRYABLE",
            "is {state}; only FAILED, CANCELLED or DEAD_LETTERED jobs can be retried", queue=queue,
        )  # fmt: skip

    async def promote(self, job_id: str, *, queue: str = "") -> Job:
        return await self._operate(
            "promote",
            job_id,
            "JOB_NOT_DELAYED",
            "is {state}; only a DELAYED job can be promoted",
            queue=queue,
        )

    async def remove(self, job_id: str, *, queue: str = "") -> JobState:
        """Removes a job that is not active, with everything filed under it; → the state it was in."""
        reply = await self._operate_raw(
            "remove_job", job_id, "JOB_ACTIVE", "is {state}; cancel it first, then remove it", queue=queue
        )
        return JobState(_text(reply[1]))

    async def _operate(
        self, script: str, job_id: str, reason: str, refusal: str, *extra: str, queue: str = ""
    ) -> Job:
        """Runs an operator's script; → the job as the transition left it, or the error that says why it
        can't be done. The answer is the script's own snapshot, never a read after it."""
        reply = await self._operate_raw(script, job_id, reason, refusal, *extra, queue=queue)
        fields, errors = reply[1]
        return _job_from_hash(dict(zip(fields[::2], fields[1::2], strict=True)), errors)

    async def _operate_raw(
        self, script: str, job_id: str, reason: str, refusal: str, *extra: str, queue: str = ""
    ) -> Any:
        keys = self.keys(queue or await self._located(job_id))
        token = uuid.uuid4().hex
        script_keys = [keys.base, keys.job(job_id), keys.errors(job_id), keys.operation(token)]
        reply = await self._run(script, script_keys, job_id, *extra)
        outcome = _text(reply[0])
        if outcome == "missing":
            raise _not_found(job_id)
        if outcome == "final":
            state = JobState(_text(reply[1])).name
            raise FailedPreconditionError(
                f"job {job_id} " + refusal.format(state=state),
                reason=reason,
                metadata={"job_id": job_id, "state": state},
            )
        return reply

    # --- search -----------------------------------------------------------------------------------

    async def search(
        self, query: JobFilter, *, page_size: int, page_token: str = ""
    ) -> tuple[list[Job], str, int, bool]:
        """Jobs matching `query`, newest created first; → (jobs, next page token or "", total matching,
        whether the total is exact).

        Per queue one read-only script checks the index zsets (task, words) and the state indexes, all in
        the queue's slot, with bounded work (`search.lua`); the queues' pages are merged here. A page may
        come back short, even empty, with a token, when a queue's walk hit its budget: the token goes on.
        """
        cursor = _decode_token(page_token)
        if query.job_id:
            hit = await self._search_by_id(query)
            return hit, "", len(hit), True
        low = "-inf" if query.created_after_ms is None else str(query.created_after_ms)
        high = "+inf" if query.created_before_ms is None else f"({query.created_before_ms}"
        # One walk per queue and asked-for state (the states are disjoint: their totals add up).
        states: list[JobState | None] = list(sorted(query.states)) or [None]
        replies = await asyncio.gather(
            *(
                self._search_queue(
                    queue, query, state=state, low=low, high=high, cursor=cursor, limit=page_size + 1
                )
                for queue in query.queues
                for state in states
            )
        )
        total = sum(reply.total for reply in replies)
        exact = all(reply.exact for reply in replies)
        entries = sorted(
            ((score, job_id, reply.queue) for reply in replies for job_id, score in reply.entries),
            reverse=True,
        )
        # Where a queue's walk stopped, everything of every queue above it is known.
        resumes = [reply.resume for reply in replies if reply.resume is not None]
        boundary = max(resumes) if resumes else None
        if boundary is not None:
            entries = [entry for entry in entries if (entry[0], entry[1]) >= boundary]
        page = entries[:page_size]
        if len(entries) > page_size:
            token = _encode_token((page[-1][0], page[-1][1]))
        elif boundary is not None:
            token = _encode_token(boundary)
        else:
            token = ""
        jobs = await self._get_located([(queue, job_id) for _, job_id, queue in page])
        return [job for job in jobs if job is not None], token, total, exact

    async def _search_queue(
        self,
        queue: str,
        query: JobFilter,
        *,
        state: JobState | None,
        low: str,
        high: str,
        cursor: tuple[float, str] | None,
        limit: int,
    ) -> _QueueHits:
        keys = self.keys(queue)
        sets = [keys.state_search_index(state.value)] if state else []
        sets += [keys.task_index(query.task)] if query.task else []
        sets += [keys.word_index("payload", word) for word in query.payload_words]
        sets += [keys.word_index("error", word) for word in query.error_words]
        cursor_args: list[str | int] = ["", ""] if cursor is None else [repr(cursor[0]), cursor[1]]
        total, exact, flat, resume_score, resume_id = await self._run(
            "search", [keys.base, *(sets or [keys.named("all")])], low, high, *cursor_args, limit,
            SEARCH_WALK_BUDGET,
        )  # fmt: skip
        resume = (float(resume_score), _text(resume_id)) if _text(resume_score) else None
        return _QueueHits(
            queue=queue,
            total=int(total),
            exact=bool(int(exact)),
            entries=[(_text(flat[i]), float(flat[i + 1])) for i in range(0, len(flat), 2)],
            resume=resume,
        )

    async def _search_by_id(self, query: JobFilter) -> list[Job]:
        """An exact id: at most one job, checked against the rest of the filter."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for queue in query.queues:
                pipe.hgetall(self.keys(queue).job(query.job_id))
            hashes = await pipe.execute()
        for raw in hashes:
            if raw and _hash_matches({_text(k): _text(v) for k, v in raw.items()}, query):
                return [_job_from_hash(raw, [])]
        return []

    async def _get_located(self, located: Sequence[tuple[str, str]]) -> list[Job | None]:
        if not located:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for queue, job_id in located:
                pipe.hgetall(self.keys(queue).job(job_id))
            hashes = await pipe.execute()
        return [_job_from_hash(raw, []) if raw else None for raw in hashes]

    # --- logs -------------------------------------------------------------------------------------

    async def write_log(self, job: ClaimedJob, level: str, message: str) -> bool:
        """Appends a line of the running job's log (cut to the line cap); → False when it is not kept
        (past the job's line cap, or the job is no longer this lease's)."""
        keys = self.keys(job.queue)
        reply = await self._run(
            "log", [keys.base, keys.job(job.id), keys.logs(job.id)], job.lease_token, self.log_max_lines,
            level, message[: self.log_max_line_chars],
        )  # fmt: skip
        return int(reply) == 1

    async def logs(self, job_id: str, *, offset: int, count: int) -> tuple[list[LogLine], int, int]:
        """Up to `count` log lines from `offset`, oldest first; → (lines, lines kept, lines dropped)."""
        keys = self.keys(await self._located(job_id))
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.lrange(keys.logs(job_id), offset, offset + count - 1)
            pipe.llen(keys.logs(job_id))
            pipe.hget(keys.job(job_id), "log_dropped")
            raw, kept, dropped = await pipe.execute()
        lines = []
        for item in raw:
            data = json.loads(item)
            lines.append(LogLine(at_ms=int(data["t"]), level=str(data["l"]), message=str(data["m"]),
                                 attempt=int(data["a"])))  # fmt: skip
        return lines, int(kept), int(dropped or 0)

    async def set_paused(self, queue: str, paused: bool) -> None:
        if paused:
            await self.redis.set(self.queue_key(queue, "paused"), 1)
        else:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.delete(self.queue_key(queue, "paused"))
                pipe.zadd(self.queue_key(queue, "marker"), {"m": 0})
                await pipe.execute()

    async def is_paused(self, queue: str) -> bool:
        return bool(await self.redis.exists(self.queue_key(queue, "paused")))

    async def wait_for_work(self, queues: Sequence[str], timeout_seconds: float) -> None:
        """Blocks until a submit, retry or resume wakes this worker, or the timeout passes.

        The one command over several queues' keys: on Redis Cluster, run a worker per queue (deploy/ does).
        """
        await self.redis.bzpopmin([self.queue_key(q, "marker") for q in queues], timeout=timeout_seconds)


def _not_found(job_id: str) -> NotFoundError:
    return NotFoundError(
        f"no job with id {job_id!r}; it never existed or was removed by its queue's retention",
        reason="JOB_NOT_FOUND",
        metadata={"job_id": job_id},
    )


def _hash_matches(fields: Mapping[str, str], query: JobFilter) -> bool:
    created = int(fields["created_at"])
    return (
        (not query.states or JobState(fields["state"]) in query.states)
        and (not query.task or fields.get("task") == query.task)
        and set(query.payload_words) <= set(fields.get("ix_payload", "").split())
        and set(query.error_words) <= set(fields.get("ix_error", "").split())
        and (query.created_after_ms is None or created >= query.created_after_ms)
        and (query.created_before_ms is None or created < query.created_before_ms)
    )


def _matches(job: Job, search: str) -> bool:
    needle = search.lower()
    return needle in job.id.lower() or needle in job.task.lower()


def _encode_token(position: tuple[float, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps([position[0], position[1]]).encode()).decode()


def _decode_token(token: str) -> tuple[float, str] | None:
    if not token:
        return None
    try:
        score, job_id = json.loads(base64.urlsafe_b64decode(token.encode()))
        return float(score), str(job_id)
    except (ValueError, TypeError, binascii.Error):
        raise InvalidArgumentError.for_field(
            "page_token", "not a token this API returned; start again without one"
        ) from None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _job_from_hash(fields: Mapping[bytes, bytes] | Mapping[str, str], errors: Sequence[bytes | str]) -> Job:
    f = {_text(k): _text(v) for k, v in fields.items() if _text(k) != "message"}

    def number(name: str) -> int | None:
        value = f.get(name)
        return int(float(value)) if value not in (None, "") else None

    return Job(
        id=f["id"],
        queue=f["queue"],
        task=f["task"],
        state=JobState(f["state"]),
        payload=json.loads(f.get("payload") or "{}"),
        priority=int(f.get("priority", 0)),
        max_attempts=int(f.get("max_attempts", 1)),
        attempts_made=int(f.get("attempts", 0)),
        deliveries=int(f.get("deliveries", 0)),
        created_at_ms=int(f["created_at"]),
        run_at_ms=number("run_at"),
        started_at_ms=number("started_at"),
        finished_at_ms=number("finished_at"),
        progress=json.loads(f["progress"]) if f.get("progress") else None,
        error=AttemptError.from_json(f["error"]) if f.get("error") else None,
        attempt_errors=tuple(AttemptError.from_json(raw) for raw in errors),
        cancel_requested=f.get("cancel_requested") == "1",
        result=json.loads(f["result"]) if "result" in f else None,
        has_result="result" in f,
        worker=f.get("worker", ""),
        version=int(f.get("version", 0)),
        transitions=tuple(_transition(entry) for entry in f.get("timeline", "").split(";") if entry),
        last_worker=f.get("last_worker", ""),
    )


def _transition(line: str) -> Transition:
    state, at_ms, worker = [*line.split(" ", 2), "", ""][:3]
    return Transition(state=JobState(state), at_ms=int(at_ms), worker=worker)
