"""The export of ingested events to BigQuery (the emulator), through Envoy: the rows land, each once, and an
outage of BigQuery backs up in the `ratelimit` queue without losing anything or spending attempts.

The module runs its own stack and emulator (persistent, so stopping it is an outage, not a wipe). The
round trip a user makes reads the table back through `/api/query`; the row-by-row checks read it with the
BigQuery client.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from google.cloud import bigquery

from devstack.bigquery_emulator import BigQueryEmulator
from devstack.ports import free_port
from devstack.redis import RedisServer
from devstack.stack import Stack
from services.warehouse.backend import BigQueryBackend, JobRef, QueryRequest
from tests.bigquery_emulator import backend_settings

DATASET = "analytics_e2e"


def _poll(read: Callable[[], Any], accept: Callable[[Any], object], *, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if accept(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s; last seen {value!r}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BigQueryEmulator]:
    running = BigQueryEmulator(Path(tmp_path_factory.mktemp("analytics-bq")), persistent=True)
    running.start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def export_stack(
    redis_server: RedisServer, emulator: BigQueryEmulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    prefix = f"e2e-export-{uuid.uuid4().hex[:8]}"
    running = Stack(
        Path(tmp_path_factory.mktemp("analytics-export-stack")),
        redis_host="127.0.0.1",
        redis_port=redis_server.port,
        gateway_port=free_port(),
        env={
            **emulator.env,
            "JOBS_KEY_PREFIX": prefix,
            "ANALYTICS_KEY_PREFIX": f"{prefix}:analytics",
            "ANALYTICS_EXPORT_ENABLED": "true",
            "ANALYTICS_EXPORT_DATASET": DATASET,
            "BIGQUERY_API_TIMEOUT_SECONDS": "1",
            "BIGQUERY_API_DEADLINE_SECONDS": "2",
        },
    )
    running.start()
    try:
        _poll(
            lambda: requests.get(f"{running.gateway_url}/api/workers", timeout=10),
            lambda r: (
                r.status_code == 200
                and any("analytics.export" in w["tasks"] for w in r.json().get("workers", []))
            ),
            timeout=30,
            what="a worker registered analytics.export",
        )
        yield running
    finally:
        running.stop()


def _ingest(stack: Stack, name: str, count: int) -> str:
    batch_id = f"export-{uuid.uuid4().hex[:10]}"
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    events = [
        {"name": name, "userId": f"u{i % 9}", "timestamp": now, "properties": {"i": i}} for i in range(count)
    ]
    response = requests.post(
        f"{stack.gateway_url}/api/analytics", json={"batchId": batch_id, "events": events}, timeout=30
    )
    assert response.status_code == 200, response.text
    return batch_id


def _job(stack: Stack, job_id: str) -> dict[str, Any]:
    response = requests.get(f"{stack.gateway_url}/api/job/status", params={"id": job_id}, timeout=10)
    assert response.status_code == 200, response.text
    job: dict[str, Any] = response.json()
    return job


def _exported(stack: Stack, batch_id: str, timeout: float = 60) -> dict[str, Any]:
    job: dict[str, Any] = _poll(
        lambda: _job(stack, f"analytics-export:{batch_id}"),
        lambda j: j["state"] in {"JOB_STATE_COMPLETED", "JOB_STATE_FAILED", "JOB_STATE_DEAD_LETTERED"},
        timeout=timeout,
        what=f"the export of {batch_id} finished",
    )
    assert job["state"] == "JOB_STATE_COMPLETED", job
    return job


def _table(emulator: BigQueryEmulator) -> bigquery.Table:
    async def read() -> bigquery.Table:
        backend = BigQueryBackend(backend_settings(emulator))
        try:
            table: bigquery.Table = await backend.call(
                lambda client: client.get_table(f"{emulator.project}.{DATASET}.events")
            )
            return table
        finally:
            backend.close()

    return asyncio.run(read())


def _rows(emulator: BigQueryEmulator, name: str) -> list[dict[str, Any]]:
    async def read() -> list[dict[str, Any]]:
        backend = BigQueryBackend(backend_settings(emulator))
        try:
            job = await backend.start_query(
                QueryRequest(
                    sql=f"SELECT batch_id, event_index, user_id, properties FROM {DATASET}.events "  # noqa: S608
                    "WHERE name = @name ORDER BY batch_id, event_index",
                    parameters=[bigquery.ScalarQueryParameter("name", "STRING", name)],
                )
            )
            ref = JobRef(job.job_id, job.location)
            await backend.wait_done(ref, 10)
            page = await backend.rows_page(ref, page_size=5000, page_token=None)
            return page.rows
        finally:
            backend.close()

    return asyncio.run(read())


def test_ingested_events_land_in_bigquery_once_each(export_stack: Stack, emulator: BigQueryEmulator) -> None:
    name = f"export.{uuid.uuid4().hex[:8]}"
    small = _ingest(export_stack, name, 3)
    large = _ingest(export_stack, name, 1000)  # two inserts of 500
    for batch_id in (small, large):
        exported = _exported(export_stack, batch_id)
        # On the `ratelimit` queue, so that its rule throttles what BigQuery is sent.
        assert (exported["queue"], exported["task"]) == ("ratelimit", "analytics.export"), exported
    rows = _rows(emulator, name)
    assert len(rows) == 1003
    assert {(row["batch_id"], row["event_index"]) for row in rows} == {
        *((small, i) for i in range(3)),
        *((large, i) for i in range(1000)),
    }
    assert rows[0]["properties"] == '{"i":0}' and rows[0]["user_id"] == "u0"
    # Created when missing, partitioned by day on the event's time.
    partitioning = _table(emulator).time_partitioning
    assert partitioning is not None and (partitioning.type_, partitioning.field) == ("DAY", "timestamp")


def test_a_bigquery_outage_backs_up_in_the_queue_and_loses_nothing(
    export_stack: Stack, emulator: BigQueryEmulator
) -> None:
    name = f"outage.{uuid.uuid4().hex[:8]}"
    emulator.stop()
    try:
        batch_id = _ingest(export_stack, name, 20)
        # Tried, held back, and tried again (the client's deadline is 2 s, the queue's hold 5 s).
        job_id = f"analytics-export:{batch_id}"
        first = _poll(
            lambda: _job(export_stack, job_id),
            lambda j: "startedAt" in j and j["state"] != "JOB_STATE_ACTIVE",
            timeout=40,
            what="the export tried and put back",
        )
        again = _poll(
            lambda: _job(export_stack, job_id),
            lambda j: (
                j.get("startedAt") not in (None, first["startedAt"]) and j["state"] != "JOB_STATE_ACTIVE"
            ),
            timeout=40,
            what="the export tried again after the outage hold",
        )
        for held in (first, again):
            assert held["state"] in {"JOB_STATE_WAITING", "JOB_STATE_DELAYED"}, held
            assert held.get("attemptsMade", 0) == 0, "an outage spends no attempt"
    finally:
        emulator.start()
    done = _exported(export_stack, batch_id)
    assert done.get("attemptsMade", 0) <= 1
    assert len(_rows(emulator, name)) == 20


def test_exported_events_are_queryable_through_api_query(export_stack: Stack) -> None:
    """The issue's round trip: events in through the gateway, then SQL over them through the gateway."""
    name = f"roundtrip.{uuid.uuid4().hex[:8]}"
    batch_id = _ingest(export_stack, name, 12)
    _exported(export_stack, batch_id)
    url = export_stack.gateway_url
    current = requests.get(f"{url}/api/settings", auth=export_stack.admin_auth, timeout=10).json()
    allowed = requests.patch(
        f"{url}/api/settings",
        json={
            "settings": {"bigquery": {"allowedDatasets": ["switchboard_sample", DATASET]}},
            "updateMask": "bigquery.allowedDatasets",
            "expectedVersion": str(current.get("version", "0")),
        },
        auth=export_stack.admin_auth,
        timeout=10,
    )
    assert allowed.status_code == 200, allowed.text
    query = {
        "sql": f"SELECT COUNT(*) AS events, COUNT(DISTINCT user_id) AS users FROM {DATASET}.events "  # noqa: S608
        "WHERE name = @name AND batch_id = @batch",
        "parameters": [
            {"name": "name", "type": "STRING", "value": name},
            {"name": "batch", "type": "STRING", "value": batch_id},
        ],
        "waitMs": 20000,
        "useCache": False,
    }
    # The bigquery service follows the settings change (its notice, or its next re-read within a second).
    answer = _poll(
        lambda: requests.post(f"{url}/api/query", json=query, timeout=30),
        lambda r: r.status_code != 400 or "not allowed" not in r.text,
        timeout=10,
        what="the export dataset allowed",
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["complete"], answer.json()
    assert answer.json()["rows"] == [{"events": "12", "users": "9"}]
