"""A worker's housekeeping, every interval: reclaim jobs whose worker died, and apply retention.

Retention removes in batches until it has caught up (or its time slice of the interval is spent), so it
keeps up with any completion rate a worker reaches instead of a fixed number of jobs per tick.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from services.jobs import metrics
from services.jobs.model import JobState
from services.jobs.queues import PolicyBook, Retention
from services.jobs.store import JobStore

logger = logging.getLogger(__name__)

RETENTION_BATCH = 1000


class Maintenance:
    def __init__(
        self, store: JobStore, policies: PolicyBook, queues: Sequence[str], *, time_slice_seconds: float
    ) -> None:
        self._store = store
        self._policies = policies
        self._queues = tuple(queues)
        self._time_slice = time_slice_seconds

    async def run_once(self) -> None:
        for queue in self._queues:
            policy = self._policies[queue]
            requeued, dead = await self._store.reclaim_expired(queue, policy.max_deliveries)
            if requeued or dead:
                logger.warning(
                    "reclaimed jobs whose worker stopped responding",
                    extra={"queue": queue, "requeued": requeued, "dead_lettered": dead},
                )
                metrics.observe_reclaimed(queue, requeued, len(dead))
        deadline = time.monotonic() + self._time_slice
        for queue in self._queues:
            await self.apply_retention(queue, deadline)

    async def apply_retention(self, queue: str, deadline: float) -> int:
        """Removes what the queue's retention no longer keeps, batch after batch; → how many."""
        policy = self._policies[queue]
        removed = 0
        rules: list[tuple[JobState, Retention]] = [
            (JobState.COMPLETED, policy.remove_on_complete),
            (JobState.FAILED, policy.remove_on_fail),
            (JobState.CANCELLED, policy.remove_on_fail),
            (JobState.DEAD_LETTERED, policy.remove_on_fail),
        ]
        for state, retention in rules:
            if not (retention.age_seconds or retention.count):
                continue
            while True:
                batch = await self._store.remove_finished(
                    queue,
                    state,
                    max_age_ms=retention.age_seconds * 1000 if retention.age_seconds else -1,
                    keep_count=retention.count if retention.count else -1,
                    limit=RETENTION_BATCH,
                )
                removed += batch
                if batch < RETENTION_BATCH or time.monotonic() >= deadline:
                    break
        return removed
