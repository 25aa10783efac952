"""Switchboard's taskiq broker: taskiq runs the tasks, our Redis job store carries the guarantees.

`SwitchboardBroker` is a taskiq `AsyncBroker`, so tasks are ordinary taskiq tasks and `taskiq worker`
can run it; `JobResultBackend` is its result backend. Together they close the gaps taskiq-redis leaves
(see FIELD-NOTES): a claimed job holds a lease that a heartbeat extends while it runs (a long job is
never run twice), an expired lease is reclaimed by any worker's reaper whether or not new jobs arrive
(crash recovery on a quiet queue), a job that keeps killing its worker is dead-lettered, retries and
delays are due times in Redis that workers promote themselves (no scheduler process), cancellation
reaches running tasks, and a stopping worker hands its unfinished jobs back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
import traceback
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from redis.exceptions import RedisError
from taskiq import (
    AckableMessage,
    AsyncBroker,
    AsyncResultBackend,
    TaskiqMessage,
    TaskiqMiddleware,
    TaskiqResult,
)
from taskiq.formatters.json_formatter import JSONFormatter
from taskiq.message import BrokerMessage

from services.jobs import metrics
from services.jobs.context import JobCancelledError, JobContext
from services.jobs.model import AttemptError, JobState
from services.jobs.queues import PolicyBook
from services.jobs.store import ClaimedJob, JobStore, Throttle
from services.runtime.errors import NonRetryableError, RateLimitedError

logger = logging.getLogger(__name__)

ALL_QUEUES = "*"
MAX_TRACEBACK_CHARS = 4000
# Longest a blocked worker waits before it looks again (bounded by the Redis socket timeout).
MAX_IDLE_WAIT_SECONDS = 0.5

_formatter = JSONFormatter()


def encode_message(job_id: str, queue: str, task: str, payload: dict[str, Any]) -> bytes:
    """The taskiq message a worker runs for a job: the payload becomes the task's keyword arguments."""
    message = TaskiqMessage(task_id=job_id, task_name=task, labels={"queue": queue}, args=[], kwargs=payload)
    return _formatter.dumps(message).message


@dataclass
class _InFlight:
    queue: str
    context: JobContext
    claimed: ClaimedJob


class JobResultBackend(AsyncResultBackend[Any]):
    """Records each attempt's outcome in the job store; results are read back from the job."""

    def __init__(self, store: JobStore, policies: PolicyBook, worker_id: str) -> None:
        self._store = store
        self._policies = policies
        self._worker_id = worker_id
        self.in_flight: dict[str, _InFlight] = {}

    async def set_result(self, task_id: str, result: TaskiqResult[Any]) -> None:
        running = self.in_flight.get(task_id)
        if running is None:
            return
        queue = running.queue
        error = _attempt_error(result)
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
        finished = await _persist(
            lambda: self._store.finish(task_id, self._worker_id, **outcome),
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


def _attempt_error(result: TaskiqResult[Any]) -> AttemptError | None:
    error = result.error
    if not result.is_err or error is None:
        try:
            json.dumps(result.return_value)
        except (TypeError, ValueError) as problem:
            return AttemptError(
                type="ResultNotSerializable",
                message=f"the task returned a value that is not JSON: {problem}",
                retryable=False,
            )
        return None
    retryable = not isinstance(error, NonRetryableError | JobCancelledError)
    trace = "".join(traceback.format_exception(error))[-MAX_TRACEBACK_CHARS:]
    message = str(error) or type(error).__name__
    if isinstance(error, TimeoutError):
        message = str(error) or "the attempt ran longer than its queue's timeout"
    return AttemptError(type=type(error).__name__, message=message, retryable=retryable, traceback=trace)


async def _persist(write: Callable[[], Awaitable[Any]], *, what: str, give_up_after: float) -> Any:
    """Retries a write while Redis is unreachable, up to `give_up_after` seconds; None if it never lands.

    Giving up is safe: the job's lease then runs out and another worker runs it again.
    """
    deadline = time.monotonic() + give_up_after
    delay = 0.05
    while True:
        try:
            return await write()
        except RedisError as error:
            if time.monotonic() + delay > deadline:
                logger.error("could not record %s: %s", what, error)
                return None
            logger.warning(
                "Redis unreachable while recording %s; retrying", what, extra={"error": str(error)}
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)


class PolicyMiddleware(TaskiqMiddleware):
    """Applies the job's queue policy to each attempt: its timeout."""

    def __init__(self, policies: PolicyBook) -> None:
        super().__init__()
        self._policies = policies

    def pre_execute(self, message: TaskiqMessage) -> TaskiqMessage:
        queue = message.labels.get("queue")
        if queue in self._policies.queues:
            message.labels["timeout"] = self._policies[queue].timeout_ms / 1000
        return message


class SwitchboardBroker(AsyncBroker):
    """A taskiq broker over `JobStore`, serving `queues` with the policies of `policies`."""

    def __init__(
        self,
        store: JobStore,
        policies: PolicyBook,
        *,
        queues: Sequence[str],
        worker_id: str | None = None,
        settings_key: str | None = None,
        maintenance_interval_seconds: float = 1.0,
        fetch_rules: Callable[[], Awaitable[Mapping[str, Throttle]]] | None = None,
    ) -> None:
        """`fetch_rules` reads the rate-limit rules (name → throttle) for queues whose policy names one."""
        super().__init__()
        self.store = store
        self.policies = policies
        self.queues = tuple(queues)
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._settings_key = settings_key or f"{store.prefix}:settings"
        self._maintenance_interval = maintenance_interval_seconds
        self._backend = JobResultBackend(store, policies, self.worker_id)
        self.result_backend = self._backend
        self.add_middlewares(PolicyMiddleware(policies))
        self._slot_freed = asyncio.Condition()
        self._running_per_queue: dict[str, int] = dict.fromkeys(self.queues, 0)
        self._rotation = 0
        self._background: list[asyncio.Task[None]] = []
        self.accepting = True
        self._fetch_rules = fetch_rules
        self._throttles: dict[str, Throttle] = {}
        self._rules_known = fetch_rules is None
        self._rules_unreachable = False

    # --- submitting (taskiq's `.kiq()`) ------------------------------------------------------------

    async def kick(self, message: BrokerMessage) -> None:
        task = self.find_task(message.task_name)
        queues = str((task.labels if task else {}).get("queues", ALL_QUEUES))
        queue = str(
            message.labels.get("queue")
            or (self.queues[0] if queues == ALL_QUEUES else queues.split(",", maxsplit=1)[0])
        )
        decoded = _formatter.loads(message.message)
        await self.store.submit(
            queue=queue,
            task=message.task_name,
            payload=decoded.kwargs,
            message=encode_message(message.task_id, queue, message.task_name, decoded.kwargs),
            job_id=message.task_id,
            priority=int(message.labels.get("priority", 0)),
            max_attempts=self.policies[queue].max_attempts,
            delay_ms=int(message.labels.get("delay_ms", 0)),
        )

    def tasks_for(self, queue: str) -> list[str]:
        """The task names a job on `queue` may name."""
        names = []
        for name, task in self.get_all_tasks().items():
            queues = str(task.labels.get("queues", ALL_QUEUES))
            if queues == ALL_QUEUES or queue in queues.split(","):
                names.append(name)
        return sorted(names)

    # --- running ----------------------------------------------------------------------------------

    @property
    def capacity(self) -> int:
        """Jobs this worker runs at once, all its queues together."""
        return sum(self.policies[queue].concurrency for queue in self.queues)

    def job_context(self, job_id: str) -> JobContext:
        return self._backend.in_flight[job_id].context

    async def startup(self) -> None:
        await super().startup()
        if self.is_worker_process:
            self._background = [
                asyncio.create_task(loop())
                for loop in (self._heartbeats, self._maintenance, self._cancellations)
            ]
            await self.refresh_policies()
            await self.refresh_throttles()

    async def shutdown(self) -> None:
        self.accepting = False
        for task in self._background:
            task.cancel()
        for task in self._background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.release_unfinished()
        await super().shutdown()

    async def release_unfinished(self) -> None:
        """Hands the jobs still running here back to their queues (a stop, not a failure)."""
        unfinished = list(self._backend.in_flight)
        if not unfinished:
            return
        released = await _persist(
            lambda: self.store.release(self.worker_id, unfinished), what="released jobs", give_up_after=5
        )
        logger.warning("handed unfinished jobs back", extra={"jobs": unfinished, "released": released})
        self._backend.in_flight.clear()

    async def listen(self) -> AsyncGenerator[bytes | AckableMessage, None]:
        """Claims jobs while this worker has room; when there is none, sleeps until woken or due.

        A submit, retry or resume wakes the worker through a blocking pop on the queues' markers. The
        next delayed job's due time is kept by a local timer instead, since Redis only checks blocking
        timeouts at its own tick (up to 100 ms late): a pending wake-up is kept, never lost, across it.
        """
        wake: asyncio.Task[None] | None = None
        backoff = 0.05
        drained = False
        try:
            while self.accepting:
                leases = await self._queues_with_room()
                if drained:
                    # The last claim saw nothing else to do: sleep until a submit wakes us, no empty claim.
                    wake, backoff = await self._sleep(wake, leases, None, backoff)
                    drained = False
                try:
                    claimed = await self.store.claim(self.worker_id, leases, self._throttles)
                except RedisError as error:
                    backoff = await self._back_off("waiting for jobs", error, backoff)
                    continue
                if isinstance(claimed, ClaimedJob):
                    backoff = 0.05
                    drained = not claimed.more
                    if self.find_task(claimed.task) is None:
                        await self._refuse_unknown_task(claimed)
                        continue
                    self._track(claimed)
                    yield AckableMessage(data=claimed.message, ack=partial(self._done, claimed.id))
                    continue
                due_in = None
                if claimed.next_due_ms is not None:
                    due_in = max(0.0, (claimed.next_due_ms - claimed.now_ms) / 1000)
                wake, backoff = await self._sleep(wake, leases, due_in, backoff)
        finally:
            if wake is not None:
                wake.cancel()

    async def _sleep(
        self,
        wake: asyncio.Task[None] | None,
        leases: list[tuple[str, int]],
        due_in: float | None,
        backoff: float,
    ) -> tuple[asyncio.Task[None] | None, float]:
        """Waits for a wake-up on the queues' markers, or `due_in` seconds; → the pending wake-up, if any."""
        if wake is None:
            queues = [queue for queue, _ in leases]
            wake = asyncio.create_task(self.store.wait_for_work(queues, MAX_IDLE_WAIT_SECONDS))
        done, _ = await asyncio.wait({wake}, timeout=due_in)
        if wake not in done:
            return wake, backoff
        failure = wake.exception()
        if isinstance(failure, RedisError):
            return None, await self._back_off("waiting for jobs", failure, backoff)
        if failure is not None:
            raise failure
        return None, 0.05

    @staticmethod
    async def _back_off(doing: str, error: Exception, delay: float) -> float:
        logger.warning("Redis unreachable while %s; retrying", doing, extra={"error": str(error)})
        await asyncio.sleep(delay)
        return min(delay * 2, 1.0)

    async def _refuse_unknown_task(self, claimed: ClaimedJob) -> None:
        """A job for a task this worker does not have fails at once, saying so (taskiq would drop it)."""
        error = AttemptError(
            type="UnknownTask",
            message=f"no task {claimed.task!r} in worker {self.worker_id}; deploy workers that register it",
            retryable=False,
        )
        logger.error(
            "job names a task this worker does not have", extra={"job_id": claimed.id, "task": claimed.task}
        )
        await _persist(
            lambda: self.store.finish(claimed.id, self.worker_id, error=error),
            what=f"outcome of job {claimed.id}",
            give_up_after=self.policies[claimed.queue].lease_ms / 1000,
        )

    def _track(self, claimed: ClaimedJob) -> None:
        self._running_per_queue[claimed.queue] += 1
        context = JobContext(
            claimed.id,
            claimed.queue,
            attempt=claimed.attempts + 1,
            deliveries=claimed.deliveries,
            report_progress=partial(self.store.set_progress, claimed.id, self.worker_id),
        )
        self._backend.in_flight[claimed.id] = _InFlight(claimed.queue, context, claimed)
        metrics.observe_started(claimed.queue, (claimed.started_at_ms - claimed.ready_at_ms) / 1000)

    async def _done(self, job_id: str) -> None:
        running = self._backend.in_flight.pop(job_id, None)
        if running is None:
            return
        async with self._slot_freed:
            self._running_per_queue[running.queue] -= 1
            self._slot_freed.notify_all()

    async def _queues_with_room(self) -> list[tuple[str, int]]:
        """(queue, lease ms) of the queues below their concurrency, rotated for fairness; waits for one.

        A queue whose rate-limit rule was never read starts nothing: its limit is honoured, not guessed.
        """
        async with self._slot_freed:
            while True:
                room = [
                    (queue, self.policies[queue].lease_ms)
                    for queue in self.queues
                    if self._running_per_queue[queue] < self.policies[queue].concurrency
                    and (self._rules_known or not self.policies[queue].rate_limit_rule)
                ]
                if room:
                    self._rotation = (self._rotation + 1) % len(room)
                    return room[self._rotation :] + room[: self._rotation]
                await self._slot_freed.wait()

    async def _heartbeats(self) -> None:
        """Extends the leases of running jobs; tells a task when its job was cancelled or taken away."""
        while True:
            interval = min(self.policies[q].lease_ms for q in self.queues) / 3000
            await asyncio.sleep(interval)
            by_queue: dict[str, list[tuple[str, str]]] = {}
            for job_id, in_flight in list(self._backend.in_flight.items()):
                by_queue.setdefault(in_flight.queue, []).append((in_flight.queue, job_id))
            for queue, jobs in by_queue.items():
                try:
                    verdicts = await self.store.heartbeat(self.worker_id, jobs, self.policies[queue].lease_ms)
                except RedisError as error:
                    logger.warning("lease extension failed; retrying", extra={"error": str(error)})
                    continue
                for job_id, verdict in verdicts.items():
                    running = self._backend.in_flight.get(job_id)
                    if running is not None:
                        if verdict == "lost":
                            logger.error("job's lease was lost; stopping it", extra={"job_id": job_id})
                        running.context.cancelled.set()

    def _throttled_queues(self) -> list[str]:
        return [queue for queue in self.queues if self.policies[queue].rate_limit_rule]

    async def refresh_throttles(self) -> None:
        """Reads the rate-limit rules the queues' policies name; keeps the last ones if that fails."""
        if self._fetch_rules is None or not self._throttled_queues():
            return
        try:
            rules = await self._fetch_rules()
        except Exception as error:  # the rate-limit service is another process: any failure is "not now"
            if not self._rules_unreachable:
                logger.warning(
                    "cannot read rate-limit rules; keeping the last known",
                    extra={"error": str(error), "throttled_queues": self._throttled_queues()},
                )
            self._rules_unreachable = True
            return
        if self._rules_unreachable:
            logger.info("rate-limit rules readable again")
        self._rules_unreachable = False
        throttles = {}
        for queue in self.queues:
            name = self.policies[queue].rate_limit_rule
            if name and name in rules:
                throttles[queue] = rules[name]
            elif name:
                logger.warning(
                    "queue's rate-limit rule does not exist; not throttled",
                    extra={"queue": queue, "rule": name},
                )
        self._throttles = throttles
        if not self._rules_known:
            self._rules_known = True
            async with self._slot_freed:
                self._slot_freed.notify_all()

    async def _maintenance(self) -> None:
        """Reclaims expired leases, applies retention and picks up policy changes, every interval."""
        while True:
            try:
                await self.refresh_policies()
                await self.refresh_throttles()
                for queue in self.queues:
                    policy = self.policies[queue]
                    requeued, dead = await self.store.reclaim_expired(queue, policy.max_deliveries)
                    if requeued or dead:
                        logger.warning(
                            "reclaimed jobs whose worker stopped responding",
                            extra={"queue": queue, "requeued": requeued, "dead_lettered": dead},
                        )
                        metrics.observe_reclaimed(queue, requeued, len(dead))
                    await self._apply_retention(queue)
            except RedisError as error:
                logger.warning("maintenance skipped: Redis unreachable", extra={"error": str(error)})
            await asyncio.sleep(self._maintenance_interval)

    async def _apply_retention(self, queue: str) -> None:
        policy = self.policies[queue]
        for state, retention in (
            (JobState.COMPLETED, policy.remove_on_complete),
            (JobState.FAILED, policy.remove_on_fail),
            (JobState.CANCELLED, policy.remove_on_fail),
            (JobState.DEAD_LETTERED, policy.remove_on_fail),
        ):
            if retention.age_seconds or retention.count:
                await self.store.remove_finished(
                    queue,
                    state,
                    max_age_ms=retention.age_seconds * 1000 if retention.age_seconds else -1,
                    keep_count=retention.count if retention.count else -1,
                )

    async def refresh_policies(self) -> None:
        """Re-reads the stored settings; the policies in force stay if Redis does not answer."""
        try:
            self.policies.apply_settings(await self.store.redis.get(self._settings_key))
        except RedisError as error:
            logger.warning("could not read stored settings; keeping policies", extra={"error": str(error)})

    async def _cancellations(self) -> None:
        """Listens for cancel requests of active jobs and signals the running task at once."""
        while True:
            try:
                async with self.store.redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(self.store.cancel_channel)
                    while True:
                        message = await pubsub.get_message(timeout=MAX_IDLE_WAIT_SECONDS)
                        if message is None:
                            continue
                        job_id = message["data"].decode()
                        running = self._backend.in_flight.get(job_id)
                        if running is not None:
                            running.context.cancelled.set()
            except RedisError as error:
                logger.warning("cancel listener lost Redis; reconnecting", extra={"error": str(error)})
                await asyncio.sleep(0.5)
