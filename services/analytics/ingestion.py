"""Accepting a batch: checked whole, kept in Redis for its jobs, and handed to the `analytics` queue.

The batch's events stay in an analytics-owned Redis key (with a TTL) and the job carries only the batch
id: a 1 MiB batch plus the job's envelope would not fit the jobs payload limit (1 MiB), and the export job
reads the same events. The job id is derived from the batch id, so a repeated batch id gets the first
batch's job back from the jobs service (its job ids are idempotency keys), and the batch is never kept
twice (ingest.lua) nor counted twice (apply.lua's marker).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from services.analytics.events import Event, validate_batch, validate_batch_id
from services.analytics.retention_source import RetentionSource
from services.analytics.settings import AnalyticsLimits
from services.analytics.store import AnalyticsStore, StoreOutcome
from services.runtime.errors import InvalidArgumentError, SwitchboardError

AGGREGATE_TASK = "analytics.aggregate"
AGGREGATE_QUEUE = "analytics"
EXPORT_TASK = "analytics.export"
EXPORT_QUEUE = "ratelimit"


def aggregate_job_id(batch_id: str) -> str:
    return f"analytics-aggregate:{batch_id}"


def export_job_id(batch_id: str) -> str:
    return f"analytics-export:{batch_id}"


class JobSubmitter(Protocol):
    async def submit(self, *, queue: str, task: str, payload: dict[str, Any], job_id: str) -> str:
        """Submits a job (an existing id returns the existing job); its id."""


@dataclass(frozen=True)
class IngestResult:
    job_id: str
    accepted: int


class Ingestor:
    def __init__(
        self,
        store: AnalyticsStore,
        jobs: JobSubmitter,
        limits: AnalyticsLimits,
        retention: RetentionSource,
        *,
        export_enabled: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._jobs = jobs
        self._limits = limits
        self._retention = retention
        self._export_enabled = export_enabled
        self._clock = clock

    async def ingest(self, events: Sequence[Event], *, batch_id: str, encoded_bytes: int) -> IngestResult:
        """`events` with timestamp_ms 0 take the time of ingestion; `encoded_bytes` is the call's size."""
        limits = self._limits
        if encoded_bytes > limits.max_batch_bytes:
            raise InvalidArgumentError.for_field(
                "events",
                f"{encoded_bytes} bytes is over the limit of {limits.max_batch_bytes} per call; "
                "split the batch",
            )
        validate_batch_id(batch_id)
        now_ms = int(self._clock() * 1000)
        timed = [e if e.timestamp_ms else replace(e, timestamp_ms=now_ms) for e in events]
        minute_retention = self._retention.current.minute_retention_seconds
        validate_batch(timed, limits=limits, now_ms=now_ms, oldest_ms=now_ms - minute_retention * 1000)
        chosen_by_caller = bool(batch_id)
        batch_id = batch_id or uuid.uuid4().hex
        stored = await self._store.store_batch(
            batch_id,
            timed,
            ttl_seconds=limits.batch_ttl_seconds,
            max_names=limits.max_event_names,
            consumers=2 if self._export_enabled else 1,
        )
        if stored.outcome is StoreOutcome.TOO_MANY_NAMES:
            raise InvalidArgumentError.for_field(
                "events",
                f"the batch brings new event names past the limit of {limits.max_event_names} distinct names "
                f"({stored.count} known); reuse existing names or ask an operator to raise "
                "ANALYTICS_MAX_EVENT_NAMES",
            )
        payload = {"batch_id": batch_id}
        try:
            job_id = await self._jobs.submit(
                queue=AGGREGATE_QUEUE, task=AGGREGATE_TASK, payload=payload, job_id=aggregate_job_id(batch_id)
            )
        except SwitchboardError:
            if not chosen_by_caller and stored.outcome is StoreOutcome.STORED:
                # Nobody can send this generated id again: its events would only wait out their TTL.
                await self._store.discard_batch(batch_id)
            raise
        if self._export_enabled:
            await self._jobs.submit(
                queue=EXPORT_QUEUE, task=EXPORT_TASK, payload=payload, job_id=export_job_id(batch_id)
            )
        return IngestResult(job_id=job_id, accepted=stored.count)
