"""Job state in Redis: every transition is one Lua script, atomic, timed by the Redis server's clock.

Layout under a key prefix (`sb` by default):
- `{p}:job:{id}` hash (the record, its taskiq message and result), `{p}:job:{id}:errors` list;
- per queue `{p}:q:{queue}:…`: `wait` (zset: priority, then submit order), `delayed` (zset: due time),
  `active` (zset: lease deadline), `marker` (zset that wakes a blocked worker), `paused` (flag),
  `s:{state}` (zset per state: when the job entered it — listing newest first and counting are O(log n)),
  `all` (zset: created time).
"""

from __future__ import annotations

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

from services.jobs.model import AttemptError, Job, JobState
from services.ratelimit.limiter import shared_lua
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


@cache
def _lua(name: str) -> str:
    # Every script gets the prelude and the limiter's algorithms (the queue throttle is the same limiter).
    parts = [(LUA_DIR / "prelude.lua").read_text(), shared_lua(), (LUA_DIR / f"{name}.lua").read_text()]
    return "\n".join(parts)


@dataclass(frozen=True)
class Throttle:
    """How fast a queue may start jobs: a rate-limit rule's parameters (see services.ratelimit.rules)."""

    algorithm: str
    period_ms: int
    limit: int
    capacity: int


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
    """False when the claim saw no other waiting or delayed job on the worker's queues."""


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

    def __init__(self, redis: Redis, scripts: RedisMux, *, prefix: str = "sb") -> None:
        self.redis = redis
        self.prefix = prefix
        self._mux = scripts
        self._scripts: dict[str, MuxScript] = {}

    def _script(self, name: str) -> MuxScript:
        if name not in self._scripts:
            self._scripts[name] = MuxScript(self._mux, _lua(name))
        return self._scripts[name]

    async def _run(self, name: str, *args: str | int | bytes) -> Any:
        return await self._script(name)(args=[self.prefix, *args])

    def _job_key(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}"

    def queue_key(self, queue: str, name: str) -> str:
        return f"{self.prefix}:q:{queue}:{name}"

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
        reply = await self._run(
            "submit", job_id, queue, task, json.dumps(payload), message, priority, max_attempts, delay_ms
        )
        if reply[0] == 0:
            existing_queue, existing_task = _text(reply[1]), _text(reply[2])
            if (existing_queue, existing_task) != (queue, task):
                raise ConflictError(
                    f"job id {job_id!r} is already used by a {existing_task!r} job on queue "
                    f"{existing_queue!r}; choose another id",
                    reason="JOB_ID_TAKEN",
                    metadata={"job_id": job_id},
                )
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
        )
        return job, True

    @staticmethod
    def new_id() -> str:
        return uuid.uuid4().hex

    # --- reading ----------------------------------------------------------------------------------

    async def get(self, job_id: str) -> Job:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self._job_key(job_id))
            pipe.lrange(self._job_key(job_id) + ":errors", 0, -1)
            fields, errors = await pipe.execute()
        if not fields:
            raise NotFoundError(
                f"no job with id {job_id!r}; it never existed or was removed by its queue's retention",
                reason="JOB_NOT_FOUND",
                metadata={"job_id": job_id},
            )
        return _job_from_hash(fields, errors)

    async def counts(self, queue: str) -> dict[JobState, int]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for state in JobState:
                pipe.zcard(self.queue_key(queue, f"s:{state.value}"))
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
        """Jobs newest first across `queues`, `page_size` at a time; → (jobs, next page token or "")."""
        cursor = _decode_token(page_token)
        index = f"s:{state.value}" if state else "all"
        examined = 0
        found: list[Job] = []
        # Each queue's index is read newest first from the cursor; merging them keeps global order.
        candidates: list[tuple[float, str, str]] = []
        # Without a search a page needs at most page_size entries of each queue; a search scans further.
        wanted = SEARCH_SCAN_BUDGET if search else page_size
        for queue in queues:
            entries = await self._entries_before(self.queue_key(queue, index), cursor, wanted)
            candidates.extend((score, job_id, queue) for job_id, score in entries)
        candidates.sort(key=lambda entry: (entry[0], entry[1]), reverse=True)
        last: tuple[float, str] | None = None
        for chunk_start in range(0, len(candidates), 200):
            chunk = candidates[chunk_start : chunk_start + 200]
            jobs = await self._get_many([job_id for _, job_id, _ in chunk])
            for (score, job_id, _), job in zip(chunk, jobs, strict=True):
                examined += 1
                last = (score, job_id)
                if job is None or (search and not _matches(job, search)):
                    continue
                found.append(job)
                if len(found) == page_size:
                    return found, _encode_token(last)
            if examined >= SEARCH_SCAN_BUDGET:
                return found, _encode_token(last) if last else ""
        return found, ""

    async def _entries_before(
        self, key: str, cursor: tuple[float, str] | None, count: int
    ) -> list[tuple[str, float]]:
        top: float | str = "+inf" if cursor is None else cursor[0]
        if cursor is not None:
            # Entries sharing the cursor's score (same millisecond) come back too and are skipped below.
            count += await self.redis.zcount(key, cursor[0], cursor[0])
        raw = cast(
            list[tuple[bytes, float]],
            await self.redis.zrevrangebyscore(key, top, "-inf", start=0, num=count, withscores=True),
        )
        if cursor is None:
            return [(_text(member), score) for member, score in raw]
        score, last_id = cursor
        # Equal scores are ordered by id; skip what the previous page already returned.
        return [
            (_text(member), s) for member, s in raw if s < score or (s == score and _text(member) < last_id)
        ]

    async def _get_many(self, job_ids: Sequence[str]) -> list[Job | None]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hgetall(self._job_key(job_id))
            hashes = await pipe.execute()
        return [_job_from_hash(fields, []) if fields else None for fields in hashes]

    # --- workers ----------------------------------------------------------------------------------

    async def claim(
        self, worker: str, leases: Sequence[tuple[str, int]], throttles: Mapping[str, Throttle] | None = None
    ) -> ClaimedJob | NothingToClaim:
        """Takes the next job from the first of `leases` ((queue, lease ms) pairs) that has one and whose
        throttle allows a start now."""
        arguments: list[str | int] = []
        for queue, lease_ms in leases:
            throttle = (throttles or {}).get(queue)
            arguments += [queue, lease_ms]
            if throttle is None:
                arguments += ["", 0, 0, 0]
            else:
                arguments += [
                    throttle.algorithm,
                    throttle.period_ms * 1000,
                    throttle.limit,
                    throttle.capacity,
                ]
        reply = await self._run("claim", worker, *arguments)
        if not reply[0]:
            next_due = int(reply[1])
            return NothingToClaim(next_due_ms=next_due if next_due >= 0 else None, now_ms=int(reply[2]))
        return ClaimedJob(
            id=_text(reply[0]),
            queue=_text(reply[1]),
            message=reply[2],
            deliveries=int(reply[3]),
            attempts=int(reply[4]),
            ready_at_ms=int(reply[5]),
            started_at_ms=int(reply[6]),
            task=_text(reply[7]),
            more=bool(int(reply[8])),
        )

    async def heartbeat(self, worker: str, jobs: Sequence[tuple[str, str]], lease_ms: int) -> dict[str, str]:
        """Extends the leases of `jobs` ((queue, id) pairs); → {id: 'cancel' | 'lost'} for jobs to stop."""
        if not jobs:
            return {}
        flat = [item for pair in jobs for item in pair]
        reply = await self._run("heartbeat", worker, lease_ms, *flat)
        return {_text(reply[i]): _text(reply[i + 1]) for i in range(0, len(reply), 2)}

    async def finish(
        self,
        job_id: str,
        worker: str,
        *,
        result: Any = None,
        error: AttemptError | None = None,
        retry_delay_ms: int = 0,
        hold_ms: int = 0,
    ) -> Finished:
        """Records an attempt's outcome: its result, or its error (retried after `retry_delay_ms` if the
        policy allows), or with `hold_ms` a rate-limited upstream (the job waits again, the queue holds)."""
        if hold_ms:
            reply = await self._run("finish", job_id, worker, 0, "", "{}", 0, 0, KEEP_ATTEMPT_ERRORS, hold_ms)
        elif error is None:
            reply = await self._run(
                "finish", job_id, worker, 1, json.dumps(result), "", 0, 0, KEEP_ATTEMPT_ERRORS
            )
        else:
            encoded = json.dumps(
                {"type": error.type, "message": error.message, "retryable": error.retryable,
                 "traceback": error.traceback}
            )  # fmt: skip
            reply = await self._run(
                "finish", job_id, worker, 0, "", encoded, int(error.retryable), retry_delay_ms,
                KEEP_ATTEMPT_ERRORS,
            )  # fmt: skip
        if _text(reply[0]) == "stale":
            return Finished(state=None)
        return Finished(state=JobState(_text(reply[0])), attempts=int(reply[1]))

    async def release(self, worker: str, job_ids: Sequence[str]) -> int:
        if not job_ids:
            return 0
        return int(await self._run("release", worker, *job_ids))

    async def reclaim_expired(
        self, queue: str, max_deliveries: int, limit: int = 100
    ) -> tuple[int, list[str]]:
        """→ (jobs requeued, ids dead-lettered) among the jobs whose lease ran out."""
        reply = await self._run("reclaim", queue, max_deliveries, limit, KEEP_ATTEMPT_ERRORS)
        return int(reply[0]), [_text(item) for item in reply[1:]]

    async def set_progress(self, job_id: str, worker: str, progress: Any) -> bool:
        return bool(await self._run("progress", job_id, worker, json.dumps(progress)))

    async def remove_finished(
        self, queue: str, state: JobState, *, max_age_ms: int = -1, keep_count: int = -1, limit: int = 1000
    ) -> int:
        if not state.finished:
            raise InvalidArgumentError.for_field(
                "state", f"only finished jobs can be removed, not {state.name}; use COMPLETED, FAILED, "
                "CANCELLED or DEAD_LETTERED"
            )  # fmt: skip
        return int(await self._run("remove", queue, state.value, max_age_ms, keep_count, limit))

    # --- operators --------------------------------------------------------------------------------

    async def cancel(self, job_id: str) -> Job:
        return await self._operate(
            "cancel", job_id, "JOB_ALREADY_FINISHED", "is already {state} and cannot be cancelled"
        )

    async def retry(self, job_id: str) -> Job:
        return await self._operate(
            "retry", job_id, "JOB_NOT_RETRYABLE",
            "is {state}; only FAILED, CANCELLED or DEAD_LETTERED jobs can be retried",
        )  # fmt: skip

    async def _operate(self, script: str, job_id: str, reason: str, refusal: str) -> Job:
        """Runs an operator's script; → the job after it, or the error that says why it can't be done."""
        reply = await self._run(script, job_id)
        outcome = _text(reply[0])
        if outcome == "missing":
            await self.get(job_id)  # raises NotFoundError
        if outcome == "final":
            state = JobState(_text(reply[1])).name
            raise FailedPreconditionError(
                f"job {job_id} " + refusal.format(state=state),
                reason=reason,
                metadata={"job_id": job_id, "state": state},
            )
        return await self.get(job_id)

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
        """Blocks until a submit, retry or resume wakes this worker, or the timeout passes."""
        await self.redis.bzpopmin([self.queue_key(q, "marker") for q in queues], timeout=timeout_seconds)


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


def _job_from_hash(fields: dict[bytes, bytes], errors: Sequence[bytes]) -> Job:
    f = {_text(k): _text(v) for k, v in fields.items() if k != b"message"}

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
    )
