"""Keeps the leases of the jobs a worker runs, and tells a task when its job was cancelled or lost."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from services.jobs.queues import PolicyBook
from services.jobs.result_backend import InFlight
from services.jobs.store import JobStore

logger = logging.getLogger(__name__)


class LeaseKeeper:
    def __init__(self, store: JobStore, policies: PolicyBook, in_flight: Mapping[str, InFlight]) -> None:
        self._store = store
        self._policies = policies
        self._in_flight = in_flight

    def interval_seconds(self, queues: tuple[str, ...]) -> float:
        """A third of the shortest lease: two extensions may fail before a lease runs out."""
        return min(self._policies[queue].lease_ms for queue in queues) / 3000

    async def extend_once(self) -> None:
        by_queue: dict[str, list[InFlight]] = {}
        for running in list(self._in_flight.values()):
            by_queue.setdefault(running.queue, []).append(running)
        for queue, jobs in by_queue.items():
            verdicts = await self._store.heartbeat(
                queue, [job.claimed for job in jobs], self._policies[queue].lease_ms
            )
            for job_id, verdict in verdicts.items():
                stopping = self._in_flight.get(job_id)
                if stopping is not None:
                    if verdict == "lost":
                        logger.error("job's lease was lost; stopping it", extra={"job_id": job_id})
                    stopping.context.cancelled.set()
