"""The analytics tasks a worker runs: `analytics.aggregate` on the `analytics` queue and `analytics.export`
on the `ratelimit` queue (submitted only with ANALYTICS_EXPORT_ENABLED; it writes to BigQuery, so the
queue's rate-limit rule throttles it).

A worker imports this module (`WORKER_TASK_MODULES=services.analytics.tasks`). The tasks reach Redis
through one client per worker process, built from the environment at their first run.
"""

from __future__ import annotations

import asyncio
import os
import socket
from dataclasses import dataclass
from typing import Any

from services.analytics.aggregation import fold, script_argument
from services.analytics.events import BATCH_ID_PATTERN
from services.analytics.export import EventExporter
from services.analytics.ingestion import AGGREGATE_QUEUE, AGGREGATE_TASK, EXPORT_QUEUE, EXPORT_TASK
from services.analytics.keys import AnalyticsKeys
from services.analytics.retention_source import RetentionSource, settings_key
from services.analytics.settings import AnalyticsTaskSettings
from services.analytics.store import AnalyticsStore
from services.jobs.catalog import task
from services.runtime.errors import NonRetryableError
from services.runtime.redis_pool import create_redis
from services.warehouse.backend import BigQueryBackend
from services.warehouse.settings import BigQueryBackendSettings


@dataclass(frozen=True)
class TaskResources:
    settings: AnalyticsTaskSettings
    store: AnalyticsStore
    retention: RetentionSource


TASK_REDIS_CONNECTIONS = 8
_resources: dict[asyncio.AbstractEventLoop, TaskResources] = {}


def resources() -> TaskResources:
    """This process's Redis client, store and retention source (one per event loop)."""
    loop = asyncio.get_running_loop()
    found = _resources.get(loop)
    if found is None:
        settings = AnalyticsTaskSettings()
        # The worker's own pools hold most of the process's Redis connection budget.
        pool = settings.redis.model_copy(
            update={"max_connections": min(TASK_REDIS_CONNECTIONS, settings.redis.max_connections)}
        )
        redis = create_redis(
            pool, client_name=f"switchboard-analytics-tasks:{socket.gethostname()}:{os.getpid()}"
        )
        found = TaskResources(
            settings=settings,
            store=AnalyticsStore(redis, AnalyticsKeys(settings.analytics.key_prefix)),
            retention=RetentionSource(
                redis,
                settings_key(settings.jobs_key_prefix),
                reread_seconds=settings.analytics.settings_reread_seconds,
            ),
        )
        _resources.clear()  # a client of a loop that ended is of no use
        _resources[loop] = found
    return found


def checked_batch_id(batch_id: Any) -> str:
    if not isinstance(batch_id, str) or not BATCH_ID_PATTERN.match(batch_id):
        raise NonRetryableError(
            f"batch_id {str(batch_id)[:120]!r} is not a batch id; submit batches via IngestEvents"
        )
    return batch_id


@task(queue=AGGREGATE_QUEUE, name=AGGREGATE_TASK)
async def aggregate(batch_id: str) -> dict[str, Any]:
    """Counts one accepted batch into the aggregates, exactly once however often it is delivered."""
    batch_id = checked_batch_id(batch_id)
    found = resources()
    if await found.store.is_applied(batch_id):
        return {"batch_id": batch_id, "applied": False}
    events = await found.store.load_batch(batch_id)
    if events is None:
        raise NonRetryableError(
            f"batch {batch_id}'s events are gone: kept ANALYTICS_BATCH_TTL_SECONDS "
            f"({found.settings.analytics.batch_ttl_seconds} s) and the job ran later"
        )
    retention = await found.retention.fresh()
    delta = script_argument(fold(events), found.store.keys, retention)
    applied = await found.store.apply(
        batch_id, delta, marker_ttl_seconds=found.settings.analytics.applied_marker_ttl_seconds
    )
    return {"batch_id": batch_id, "applied": applied, "events": len(events)}


_exporters: dict[asyncio.AbstractEventLoop, EventExporter] = {}


def exporter() -> EventExporter:
    """This process's exporter, on the BigQuery backend the environment names (one per event loop)."""
    loop = asyncio.get_running_loop()
    found = _exporters.get(loop)
    if found is None:
        limits = resources().settings.analytics
        found = EventExporter(
            BigQueryBackend(BigQueryBackendSettings()),
            dataset=limits.export_dataset,
            table=limits.export_table,
            rows_per_insert=limits.export_rows_per_insert,
        )
        _exporters.clear()
        _exporters[loop] = found
    return found


@task(queue=EXPORT_QUEUE, name=EXPORT_TASK)
async def export(batch_id: str) -> dict[str, Any]:
    """Writes one accepted batch's events to BigQuery (at least once; insert ids make repeats harmless)."""
    batch_id = checked_batch_id(batch_id)
    found = resources()
    if await found.store.is_exported(batch_id):
        return {"batch_id": batch_id, "exported": False}
    events = await found.store.load_batch(batch_id)
    if events is None:
        raise NonRetryableError(
            f"batch {batch_id}'s events are gone: kept ANALYTICS_BATCH_TTL_SECONDS "
            f"({found.settings.analytics.batch_ttl_seconds} s) and the export ran later"
        )
    rows = await exporter().export(batch_id, events)
    marker_ttl = found.settings.analytics.applied_marker_ttl_seconds
    await found.store.mark_exported(batch_id, marker_ttl_seconds=marker_ttl)
    return {"batch_id": batch_id, "exported": True, "rows": rows}
