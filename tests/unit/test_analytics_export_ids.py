"""What the export sends BigQuery: stable insert ids, so an export tried again is dropped as repeats.

BigQuery's deduplication by insert id cannot run here (bqemulator keeps every row it is sent), so this
test stands in for BigQuery with a recorder of the insert calls and checks our side of the contract:
every try of a batch sends the same id for the same event, in chunks of the configured size.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from services.analytics.events import Event
from services.analytics.export import EventExporter
from services.warehouse.backend import BigQueryBackend
from services.warehouse.settings import BigQueryBackendSettings


class _RecordedBigQuery(BigQueryBackend):
    """Only what the exporter touches: its settings, and `call`, here recording each insert's ids."""

    def __init__(self) -> None:
        self.settings = BigQueryBackendSettings(google_cloud_project="test-project")
        self.inserts: list[list[str]] = []

    async def call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if getattr(function, "__name__", "") == "_insert":
            rows, ids = args
            assert len(rows) == len(ids)
            self.inserts.append(list(ids))
        return None


async def test_every_try_of_a_batch_sends_the_same_insert_ids_in_chunks() -> None:
    bigquery = _RecordedBigQuery()
    exporter = EventExporter(bigquery, dataset="analytics", table="events", rows_per_insert=2)
    events = [Event("signup", f"u{i}", 1_700_000_000_000 + i, {"i": i}) for i in range(5)]
    assert await exporter.export("batch-7", events) == 5
    first = bigquery.inserts[:]
    assert first == [["batch-7:0", "batch-7:1"], ["batch-7:2", "batch-7:3"], ["batch-7:4"]]
    await exporter.export("batch-7", events)  # the job delivered again: the same ids
    assert bigquery.inserts[3:] == first
