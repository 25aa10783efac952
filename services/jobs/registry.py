"""The worker registry: which workers are alive, what they serve and which tasks they run.

Each worker writes its record on every heartbeat (`WorkerRegistry.beat`): a hash `P:worker:<id>` that
expires a few heartbeats later, and its id in the index `P:workers` (a zset scored by the heartbeat's
time). Liveness is the hash's TTL, counted by Redis' own clock, so hosts whose clocks differ agree on who
is alive; the index only says where to look. A worker that stops cleanly removes both at once; one that
dies vanishes when its hash expires. The keys are in docs/key-layout.md.

`LiveWorkers` is the Jobs API's view: refreshed in the background, it tells which tasks live workers run
on each queue, so SubmitJob accepts a team's task (imported into its workers only) without reading Redis
per call.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from redis.asyncio import Redis

logger = logging.getLogger(__name__)

# Bounds, chosen so the largest ListWorkers answer (every listed worker with every task) stays under the
# 4 MiB message limit: 256 workers x 100 tasks x 100 characters is about 2.6 MB.
MAX_WORKERS_LISTED = 256
"""Live workers read at most (the most recent heartbeats); a deployment with more is not all seen."""
MAX_TASKS_PER_WORKER = 100
MAX_TASK_NAME_LENGTH = 100
TASK_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.:\-]{1,100}$")
MISSED_HEARTBEATS_BEFORE_DEAD = 3
INDEX_PRUNE_AFTER_MS = 10 * 60 * 1000
"""An index entry whose worker has not beaten for this long (its hash long gone) is removed."""


class RegistrationError(ValueError):
    """A worker's record is out of bounds (too many tasks, a bad task name)."""


@dataclass(frozen=True)
class WorkerRecord:
    """One worker as it registers itself."""

    id: str
    host: str
    pid: int
    queues: tuple[str, ...]
    tasks: Mapping[str, Sequence[str]]
    """Task names per queue it serves."""
    capacity: int
    started_at_ms: int
    version: str
    heartbeat_at_ms: int = 0
    active_jobs: int = 0
    """Jobs it was running when it wrote the record."""

    @property
    def task_names(self) -> list[str]:
        """Every task it runs, on any of its queues."""
        return sorted({name for names in self.tasks.values() for name in names})

    def check_bounds(self) -> None:
        names = self.task_names
        if len(names) > MAX_TASKS_PER_WORKER:
            raise RegistrationError(
                f"a worker may register at most {MAX_TASKS_PER_WORKER} tasks, this one has {len(names)}; "
                "split the task modules across workers of different queues"
            )
        bad = [name for name in names if not TASK_NAME_PATTERN.match(name)]
        if bad:
            raise RegistrationError(
                f"task name(s) {bad[:5]} are not 1 to {MAX_TASK_NAME_LENGTH} letters, digits and . _ : -"
            )

    def to_fields(self) -> dict[str, str]:
        return {
            "id": self.id,
            "host": self.host,
            "pid": str(self.pid),
            "queues": json.dumps(list(self.queues)),
            "tasks": json.dumps({queue: sorted(names) for queue, names in self.tasks.items()}),
            "capacity": str(self.capacity),
            "started_at_ms": str(self.started_at_ms),
            "version": self.version,
            "heartbeat_at_ms": str(self.heartbeat_at_ms),
            "active_jobs": str(self.active_jobs),
        }

    @classmethod
    def from_fields(cls, fields: Mapping[bytes, bytes]) -> WorkerRecord:
        text = {key.decode(): value.decode() for key, value in fields.items()}
        tasks = json.loads(text["tasks"])
        return cls(
            id=text["id"],
            host=text["host"],
            pid=int(text["pid"]),
            queues=tuple(json.loads(text["queues"])),
            tasks={str(queue): tuple(names) for queue, names in tasks.items()},
            capacity=int(text["capacity"]),
            started_at_ms=int(text["started_at_ms"]),
            version=text["version"],
            heartbeat_at_ms=int(text["heartbeat_at_ms"]),
            active_jobs=int(text.get("active_jobs", 0)),  # absent from the records of older workers
        )


class WorkerRegistry:
    """The registry's keys under a prefix: `P:workers` (index) and `P:worker:<id>` (record, with a TTL)."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self.index_key = f"{prefix}:workers"
        self._record_prefix = f"{prefix}:worker:"

    def record_key(self, worker_id: str) -> str:
        return f"{self._record_prefix}{worker_id}"

    async def beat(self, record: WorkerRecord, *, ttl_ms: int) -> None:
        """Writes the record whole (so an expired or flushed one comes back) and keeps it `ttl_ms`."""
        key = self.record_key(record.id)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hset(key, mapping=record.to_fields())  # type: ignore[arg-type]
            pipe.pexpire(key, ttl_ms)
            pipe.zadd(self.index_key, {record.id: record.heartbeat_at_ms})
            pipe.zremrangebyscore(self.index_key, "-inf", record.heartbeat_at_ms - INDEX_PRUNE_AFTER_MS)
            await pipe.execute()

    async def remove(self, worker_id: str) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.delete(self.record_key(worker_id))
            pipe.zrem(self.index_key, worker_id)
            await pipe.execute()

    async def live(self) -> list[WorkerRecord]:
        """The live workers, the most recent heartbeat first (at most MAX_WORKERS_LISTED)."""
        ids = [
            _text(worker_id)
            for worker_id in await self._redis.zrevrange(self.index_key, 0, MAX_WORKERS_LISTED - 1)
        ]
        if not ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for worker_id in ids:
                pipe.hgetall(self.record_key(worker_id))
            found = await pipe.execute()
        records = []
        for worker_id, fields in zip(ids, found, strict=True):
            if not fields:
                continue  # its hash expired: the worker is dead
            try:
                records.append(WorkerRecord.from_fields(fields))
            except (KeyError, ValueError) as error:
                logger.warning(
                    "unreadable worker record skipped", extra={"worker": worker_id, "error": str(error)}
                )
        return records


@dataclass(frozen=True)
class WorkersView:
    """The live workers at one reading, with what the API asks of them."""

    workers: tuple[WorkerRecord, ...] = ()
    tasks_per_queue: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, workers: Sequence[WorkerRecord]) -> WorkersView:
        tasks: dict[str, set[str]] = {}
        for worker in workers:
            for queue in worker.queues:
                tasks.setdefault(queue, set()).update(worker.tasks.get(queue, ()))
        return cls(tuple(workers), {queue: frozenset(names) for queue, names in tasks.items()})

    def tasks_for(self, queue: str) -> frozenset[str]:
        return self.tasks_per_queue.get(queue, frozenset())

    def serving(self, queue: str) -> int:
        """How many live workers serve `queue`."""
        return sum(1 for worker in self.workers if queue in worker.queues)


class LiveWorkers:
    """The Jobs API's cached view of the registry, refreshed by `refresh` (a background loop)."""

    def __init__(self, registry: WorkerRegistry) -> None:
        self.registry = registry
        self.view = WorkersView()

    async def refresh(self) -> WorkersView:
        """Reads the registry; on a Redis error the last view stays (the loop logs the error)."""
        self.view = WorkersView.of(await self.registry.live())
        return self.view

    def tasks_with(self, code_tasks_for: Callable[[str], Sequence[str]]) -> Callable[[str], list[str]]:
        """`tasks_for(queue)`: the tasks the code knows on `queue` plus those live workers run there."""

        def tasks_for(queue: str) -> list[str]:
            return sorted(set(code_tasks_for(queue)) | self.view.tasks_for(queue))

        return tasks_for


def code_version() -> str:
    """The version of Switchboard a worker runs (from the installed package, else `unknown`)."""
    try:
        return importlib.metadata.version("switchboard")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
