"""A worker's registration: its record written on every heartbeat, removed when it starts to stop."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable

from redis.exceptions import RedisError

from services.jobs.registry import MISSED_HEARTBEATS_BEFORE_DEAD, WorkerRecord, WorkerRegistry

logger = logging.getLogger(__name__)


class Heartbeat:
    """Beats `record()` (read afresh each time: capacity follows the policies) every `interval_seconds`."""

    def __init__(
        self, registry: WorkerRegistry, record: Callable[[], WorkerRecord], *, interval_seconds: float
    ) -> None:
        self._registry = registry
        self._record = record
        self.interval_seconds = interval_seconds
        self._worker_id = record().id
        self._left = False
        # A beat in flight must not land after the removal and bring the record back.
        self._writing = asyncio.Lock()

    async def beat_once(self) -> None:
        async with self._writing:
            if self._left:
                return
            record = dataclasses.replace(self._record(), heartbeat_at_ms=int(time.time() * 1000))
            ttl_ms = max(1, int(self.interval_seconds * MISSED_HEARTBEATS_BEFORE_DEAD * 1000))
            await self._registry.beat(record, ttl_ms=ttl_ms)

    async def deregister(self) -> None:
        """Leaves the registry for good, so the API stops counting this worker at once; should Redis not
        answer, the record expires by itself."""
        async with self._writing:
            if self._left:
                return
            self._left = True
            try:
                await self._registry.remove(self._worker_id)
            except (RedisError, TimeoutError) as error:
                logger.warning(
                    "could not deregister; the record expires by itself",
                    extra={"worker": self._worker_id, "error": str(error)},
                )
