"""Writing accepted batches' raw events to a BigQuery table, for queries heavier than the aggregates.

The table (`ANALYTICS_EXPORT_DATASET`.`ANALYTICS_EXPORT_TABLE`) is created when missing, partitioned by day
on the event's timestamp. Rows go in with the streaming insert API, `ANALYTICS_EXPORT_ROWS_PER_INSERT` at a
time, each with the insert id `<batch id>:<index>`: an export tried again (a worker that died after
BigQuery took the rows) sends the same ids, and BigQuery drops the repeats (at-least-once, deduplicated).

What a failure means for the job is a type (services.runtime.errors): BigQuery unreachable, overloaded or
over its quota is a `RateLimitedError`, so the job waits again without spending an attempt and the whole
`ratelimit` queue holds: a long outage backs up in the queue and loses nothing (the events stay in Redis
for ANALYTICS_BATCH_TTL_SECONDS). Rows BigQuery refuses as invalid fail the job for good, saying why.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from google.api_core import exceptions as google_errors
from google.cloud import bigquery
from google.cloud.bigquery.retry import DEFAULT_RETRY

from services.analytics.events import Event
from services.runtime.errors import NonRetryableError, RateLimitedError
from services.warehouse.backend import BigQueryBackend

logger = logging.getLogger(__name__)

SCHEMA = [
    bigquery.SchemaField("batch_id", "STRING", mode="REQUIRED"),
    bigquery.SchemaField("event_index", "INT64", mode="REQUIRED"),
    bigquery.SchemaField("name", "STRING", mode="REQUIRED"),
    bigquery.SchemaField("user_id", "STRING"),
    bigquery.SchemaField("timestamp", "TIMESTAMP", mode="REQUIRED"),
    bigquery.SchemaField("properties", "STRING", description="The event's properties as JSON text."),
]
# How long the queue holds after BigQuery could not take the rows.
OUTAGE_HOLD_SECONDS = 5.0
_OVERLOADED = (
    google_errors.TooManyRequests,
    google_errors.ServiceUnavailable,
    google_errors.InternalServerError,
    google_errors.GatewayTimeout,
    google_errors.BadGateway,
)


def insert_id(batch_id: str, index: int) -> str:
    return f"{batch_id}:{index}"


def rows_of(batch_id: str, events: Sequence[Event]) -> list[dict[str, Any]]:
    return [
        {
            "batch_id": batch_id,
            "event_index": index,
            "name": event.name,
            "user_id": event.user_id or None,
            "timestamp": event.timestamp_ms / 1000,
            "properties": json.dumps(event.properties, separators=(",", ":")),
        }
        for index, event in enumerate(events)
    ]


class EventExporter:
    def __init__(self, backend: BigQueryBackend, *, dataset: str, table: str, rows_per_insert: int) -> None:
        self._backend = backend
        self._dataset = dataset
        self._table = table
        self._rows_per_insert = rows_per_insert
        self._table_ready = False
        settings = backend.settings
        self._retry = DEFAULT_RETRY.with_deadline(settings.bigquery_api_deadline_seconds)
        self._timeout = settings.bigquery_api_timeout_seconds

    @property
    def table_id(self) -> str:
        return f"{self._backend.settings.project}.{self._dataset}.{self._table}"

    async def export(self, batch_id: str, events: Sequence[Event]) -> int:
        """Inserts the batch's events; → rows sent. Raises a JobError saying what the job should do."""
        try:
            if not self._table_ready:
                await self._backend.call(self._ensure_table)
                self._table_ready = True
            rows = rows_of(batch_id, events)
            for start in range(0, len(rows), self._rows_per_insert):
                chunk = rows[start : start + self._rows_per_insert]
                ids = [insert_id(batch_id, start + offset) for offset in range(len(chunk))]
                try:
                    await self._backend.call(self._insert, chunk, ids)
                except google_errors.NotFound:
                    # The table went away (deleted, an emulator restarted): make it again, once.
                    await self._backend.call(self._ensure_table)
                    await self._backend.call(self._insert, chunk, ids)
        except (*_OVERLOADED, google_errors.RetryError, OSError, TimeoutError) as error:
            logger.warning(
                "BigQuery did not take the rows; the export waits", extra={"error": str(error)[:300]}
            )
            raise RateLimitedError(
                f"BigQuery unavailable ({type(error).__name__}); the export waits and tries again",
                retry_after_seconds=OUTAGE_HOLD_SECONDS,
            ) from None
        except google_errors.GoogleAPICallError as error:
            raise NonRetryableError(f"BigQuery refused the export: {str(error)[:500]}") from None
        return len(rows)

    def _ensure_table(self, client: bigquery.Client) -> None:
        client.create_dataset(
            f"{client.project}.{self._dataset}", exists_ok=True, retry=self._retry, timeout=self._timeout
        )
        table = bigquery.Table(self.table_id, schema=SCHEMA)
        table.time_partitioning = bigquery.TimePartitioning(
            type_=bigquery.TimePartitioningType.DAY, field="timestamp"
        )
        client.create_table(table, exists_ok=True, retry=self._retry, timeout=self._timeout)

    def _insert(self, client: bigquery.Client, rows: list[dict[str, Any]], ids: list[str]) -> None:
        errors = client.insert_rows_json(
            self.table_id, rows, row_ids=ids, retry=self._retry, timeout=self._timeout
        )
        if errors:
            raise NonRetryableError(f"BigQuery refused {len(errors)} row(s): {str(errors[:3])[:500]}")
