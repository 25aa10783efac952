"""Switchboard's taskiq broker: taskiq runs the tasks, our Redis job store carries the guarantees.

`SwitchboardBroker` is a taskiq `AsyncBroker`, so tasks are ordinary taskiq tasks and `taskiq worker`
can run it; `JobResultBackend` (services.jobs.result_backend) is its result backend. Together they close
the gaps taskiq-redis leaves (see FIELD-NOTES): a claimed job holds a lease that a heartbeat extends while
it runs (a long job is never run twice), an expired lease is reclaimed by any worker's maintenance whether
or not new jobs arrive (crash recovery on a quiet queue), a job that keeps killing its worker is
dead-lettered, retries and delays are due times in Redis that workers promote themselves (no scheduler
process), cancellation reaches running tasks, and a stopping worker hands its unfinished jobs back.

This module is the broker itself: submitting (`kick`) and the claim loop (`listen`). Its background loops
are modules of their own in services/jobs/worker/ (leases, maintenance, cancellations), each run by
services.runtime.background so that one failed iteration never stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import AsyncGenerator, Sequence
from functools import partial

from redis.exceptions import RedisError
from taskiq import AckableMessage, AsyncBroker
from taskiq.message import BrokerMessage

from services.jobs import metrics
from services.jobs.context import JobContext
from services.jobs.message import FORMATTER
from services.jobs.persistence import persist
from services.jobs.policy_source import PolicySource
from services.jobs.queues import PolicyBook
from services.jobs.registry import WorkerRecord, WorkerRegistry, code_version
from services.jobs.result_backend import DEFAULT_MAX_RESULT_BYTES, InFlight, JobResultBackend
from services.jobs.store import ClaimedJob, JobStore
from services.jobs.submission import Submission, validate_submission
from services.jobs.throttles import RulesReader, ThrottleBook
from services.jobs.timeout_middleware import AttemptTimeoutMiddleware
from services.jobs.worker.cancellations import listen_for_cancellations
from services.jobs.worker.heartbeat import Heartbeat
from services.jobs.worker.leases import LeaseKeeper
from services.jobs.worker.maintenance import Maintenance
from services.runtime import background

logger = logging.getLogger(__name__)

ALL_QUEUES = "*"
# Longest a blocked worker waits before it looks again (bounded by the Redis socket timeout).
MAX_IDLE_WAIT_SECONDS = 0.5
DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024


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
        fetch_rules: RulesReader | None = None,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES,
        on_loop_death: background.DeathReport | None = None,
        heartbeat_interval_seconds: float = 1.0,
    ) -> None:
        """`fetch_rules` reads the rate-limit rules (name → throttle) for queues whose policy names one.
        `on_loop_death` is told if a background loop ever ends (by default the worker stops taking jobs)."""
        super().__init__()
        self.store = store
        self.policies = policies
        self.queues = tuple(queues)
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.policy_source = PolicySource(store.redis, settings_key or f"{store.prefix}:settings", policies)
        self._maintenance_interval = maintenance_interval_seconds
        self._max_payload_bytes = max_payload_bytes
        self._backend = JobResultBackend(store, policies, self.worker_id, max_result_bytes=max_result_bytes)
        self.result_backend = self._backend
        self.add_middlewares(AttemptTimeoutMiddleware(policies))
        self._slot_freed = asyncio.Condition()
        self._running_per_queue: dict[str, int] = dict.fromkeys(self.queues, 0)
        self._rotation = 0
        self._background: list[asyncio.Task[None]] = []
        self.accepting = True
        self.throttles = ThrottleBook(policies, self.queues, fetch_rules)
        self._on_loop_death = on_loop_death or self._stop_on_loop_death
        self.loop_death: str | None = None
        self.loop_died = asyncio.Event()
        self._tasks_per_queue: dict[str, list[str]] = {}
        self._heartbeat_interval = heartbeat_interval_seconds
        self._heartbeat: Heartbeat | None = None

    # --- submitting (taskiq's `.kiq()`) ------------------------------------------------------------

    async def kick(self, message: BrokerMessage) -> None:
        """Submits a `.kiq()` call as a job, with the same checks as the Jobs API's SubmitJob."""
        decoded = FORMATTER.loads(message.message)
        task = self.find_task(message.task_name)
        label = message.labels.get("queue")
        if label:
            queue = str(label)
        else:
            allowed = str((task.labels if task else {}).get("queues", ALL_QUEUES))
            queue = self.queues[0] if allowed == ALL_QUEUES else allowed.split(",", maxsplit=1)[0]
        submission = validate_submission(
            Submission(
                queue=queue,
                task=message.task_name,
                payload=decoded.kwargs,
                job_id=message.task_id,
                priority=int(message.labels.get("priority", 0)),
                delay_ms=int(message.labels.get("delay_ms", 0)),
                positional_args=len(decoded.args),
            ),
            tasks_for=self.tasks_for,
            max_payload_bytes=self._max_payload_bytes,
        )
        await self.store.submit(
            queue=submission.queue,
            task=submission.task,
            payload=submission.payload,
            message=submission.message,
            job_id=submission.job_id,
            priority=submission.priority,
            max_attempts=self.policies[submission.queue].max_attempts,
            delay_ms=submission.delay_ms,
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

    async def refresh_policies(self) -> None:
        await self.policy_source.refresh()

    async def refresh_throttles(self) -> None:
        was_known = self.throttles.known.is_set()
        await self.throttles.refresh()
        if not was_known and self.throttles.known.is_set():
            async with self._slot_freed:
                self._slot_freed.notify_all()

    async def startup(self) -> None:
        await super().startup()
        self._tasks_per_queue = {queue: self.tasks_for(queue) for queue in self.queues}
        if self.is_worker_process:
            await self.refresh_policies()
            await self.refresh_throttles()
            self._heartbeat = self._registration()
            leases = LeaseKeeper(self.store, self.policies, self._backend.in_flight)
            maintenance = Maintenance(
                self.store, self.policies, self.queues, time_slice_seconds=self._maintenance_interval / 2
            )
            loops = {
                "leases": background.run_every(
                    "leases",
                    leases.extend_once,
                    interval_seconds=lambda: leases.interval_seconds(self.queues),
                ),
                "settings": background.run_every(
                    "settings",
                    partial(self.policy_source.follow, reread_seconds=self._maintenance_interval),
                    interval_seconds=self._maintenance_interval,
                ),
                "throttles": background.run_every(
                    "throttles", self.refresh_throttles, interval_seconds=self._maintenance_interval
                ),
                "maintenance": background.run_every(
                    "maintenance", maintenance.run_once, interval_seconds=self._maintenance_interval
                ),
                "cancellations": background.run_every(
                    "cancellations",
                    partial(listen_for_cancellations, self.store, self._backend.in_flight),
                    interval_seconds=0.5,
                ),
                "heartbeat": background.run_every(
                    "heartbeat", self._heartbeat.beat_once, interval_seconds=self._heartbeat_interval
                ),
            }
            self._background = [
                background.start(name, loop, on_death=self._on_loop_death) for name, loop in loops.items()
            ]

    def _registration(self) -> Heartbeat:
        """This worker in the registry (services.jobs.registry): the API accepts the tasks it runs."""
        started_at_ms = int(time.time() * 1000)
        version = code_version()

        def record() -> WorkerRecord:
            return WorkerRecord(
                id=self.worker_id,
                host=socket.gethostname(),
                pid=os.getpid(),
                queues=self.queues,
                tasks=self._tasks_per_queue,
                capacity=self.capacity,
                started_at_ms=started_at_ms,
                version=version,
                active_jobs=len(self._backend.in_flight),
            )

        record().check_bounds()
        return Heartbeat(
            WorkerRegistry(self.store.redis, self.store.prefix),
            record,
            interval_seconds=self._heartbeat_interval,
        )

    def _stop_on_loop_death(self, name: str, why: BaseException) -> None:
        """A worker without its leases or reclaim must not go on taking jobs: it stops, so its process
        exits and its supervisor (make run, Kubernetes) starts a new one."""
        self.loop_death = f"background loop {name!r} died: {type(why).__name__}: {why}"
        self.accepting = False
        self.loop_died.set()

    async def shutdown(self) -> None:
        self.accepting = False
        for task in self._background:
            task.cancel()
        for task in self._background:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.leave_registry()
        await self.release_unfinished()
        await super().shutdown()

    async def leave_registry(self) -> None:
        """Removes this worker from the registry and stops its heartbeat: it is stopping."""
        if self._heartbeat is not None:
            await self._heartbeat.deregister()

    async def release_unfinished(self) -> None:
        """Hands the jobs still running here back to their queues (a stop, not a failure)."""
        unfinished = [running.claimed for running in self._backend.in_flight.values()]
        if not unfinished:
            return
        released = await persist(
            lambda: self.store.release(unfinished), what="released jobs", give_up_after=5
        )
        logger.warning(
            "handed unfinished jobs back",
            extra={"jobs": [job.id for job in unfinished], "released": released},
        )
        self._backend.in_flight.clear()

    async def listen(self) -> AsyncGenerator[bytes | AckableMessage, None]:
        """Claims jobs while this worker has room; when there is none, sleeps until woken or due.

        Each claim is one queue's script (one hash tag); the queues with room are tried in a rotating
        order. A submit, retry or resume wakes the worker through a blocking pop on the queues' markers.
        The next delayed job's due time is kept by a local timer instead, since Redis only checks blocking
        timeouts at its own tick (up to 100 ms late): a pending wake-up is kept, never lost, across it.
        """
        wake: asyncio.Task[None] | None = None
        backoff = 0.05
        drained = False
        try:
            while self.accepting:
                leases = await self._queues_with_room()
                if not self.accepting:
                    break
                if drained:
                    # The last claim saw nothing else to do: sleep until a submit wakes us, no empty claim.
                    wake, backoff = await self._sleep(wake, leases, None, backoff)
                    drained = False
                try:
                    claimed, due_in = await self._claim_first(leases)
                except (RedisError, TimeoutError) as error:
                    backoff = await self._back_off("waiting for jobs", error, backoff)
                    continue
                if claimed is not None:
                    backoff = 0.05
                    drained = not claimed.more and len(leases) == 1
                    if self.find_task(claimed.task) is None:
                        await self._hand_back_unknown_task(claimed)
                        continue
                    self._track(claimed)
                    yield AckableMessage(data=claimed.message, ack=partial(self._done, claimed.id))
                    continue
                wake, backoff = await self._sleep(wake, leases, due_in, backoff)
        finally:
            if wake is not None:
                wake.cancel()

    async def _claim_first(self, leases: list[tuple[str, int]]) -> tuple[ClaimedJob | None, float | None]:
        """The first job one of the queues gives; else None and the seconds until the next is due."""
        due_in: float | None = None
        for queue, lease_ms in leases:
            claimed = await self.store.claim(
                self.worker_id,
                queue,
                lease_ms,
                self.throttles.throttles.get(queue),
                tasks=self._tasks_per_queue.get(queue) or self.tasks_for(queue),
            )
            if isinstance(claimed, ClaimedJob):
                return claimed, None
            if claimed.next_due_ms is not None:
                wait = max(0.0, (claimed.next_due_ms - claimed.now_ms) / 1000)
                due_in = wait if due_in is None else min(due_in, wait)
        return None, due_in

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
        if isinstance(failure, RedisError | TimeoutError):
            return None, await self._back_off("waiting for jobs", failure, backoff)
        if failure is not None:
            raise failure
        return None, 0.05

    @staticmethod
    async def _back_off(doing: str, error: Exception, delay: float) -> float:
        logger.warning("Redis unreachable while %s; retrying", doing, extra={"error": str(error)})
        await asyncio.sleep(delay)
        return min(delay * 2, 1.0)

    async def _hand_back_unknown_task(self, claimed: ClaimedJob) -> None:
        """A job for a task this worker does not have goes back to its queue, no attempt used, for a
        worker that has it (a rolling deploy, or workers with different task modules)."""
        logger.warning(
            "job names a task this worker does not have; handed back for another worker",
            extra={
                "job_id": claimed.id,
                "task": claimed.task,
                "queue": claimed.queue,
                "worker": self.worker_id,
            },
        )
        await persist(
            lambda: self.store.release([claimed]),
            what=f"hand-back of job {claimed.id}",
            give_up_after=self.policies[claimed.queue].lease_ms / 1000,
        )

    def _track(self, claimed: ClaimedJob) -> None:
        self._running_per_queue[claimed.queue] += 1
        context = JobContext(
            claimed.id,
            claimed.queue,
            attempt=claimed.attempts + 1,
            deliveries=claimed.deliveries,
            report_progress=partial(self.store.set_progress, claimed),
            write_log=partial(self.store.write_log, claimed),
        )
        self._backend.in_flight[claimed.id] = InFlight(claimed.queue, context, claimed)
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
            while self.accepting:
                room = [
                    (queue, self.policies[queue].lease_ms)
                    for queue in self.queues
                    if self._running_per_queue[queue] < self.policies[queue].concurrency
                    and (self.throttles.known.is_set() or not self.policies[queue].rate_limit_rule)
                ]
                if room:
                    self._rotation = (self._rotation + 1) % len(room)
                    return room[self._rotation :] + room[: self._rotation]
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._slot_freed.wait(), timeout=MAX_IDLE_WAIT_SECONDS)
            return []
