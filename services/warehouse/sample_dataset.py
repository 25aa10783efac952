"""The sample dataset `switchboard_sample.events`: realistic product events, generated deterministically.

`make run` seeds it into the emulator (idempotently: a table that already holds the rows is left alone),
so a new user can query something at once. `python -m services.warehouse.sample_dataset` seeds whatever
backend the environment configures.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from google.api_core import exceptions as google_errors
from google.cloud import bigquery

from services.warehouse.backend import BigQueryBackend

logger = logging.getLogger(__name__)

DATASET = "switchboard_sample"
TABLE = "events"
ROWS = 3_000
SEED = 20261201
_START = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
_SPAN_SECONDS = 30 * 86_400
_BATCH = 500

SCHEMA = [
    bigquery.SchemaField("name", "STRING", mode="REQUIRED"),
    bigquery.SchemaField("user_id", "STRING", mode="REQUIRED"),
    bigquery.SchemaField("timestamp", "TIMESTAMP", mode="REQUIRED"),
    bigquery.SchemaField("properties", "STRING", description="The event's properties, a JSON object."),
]

_EVENTS = (
    ("page_view", 50),
    ("signup", 4),
    ("login", 18),
    ("search", 12),
    ("add_to_cart", 8),
    ("checkout", 3),
    ("purchase", 2),
    ("logout", 3),
)
_PAGES = ("/", "/pricing", "/docs", "/blog", "/product/alpha", "/product/beta", "/cart", "/account")
_COUNTRIES = ("US", "DE", "FR", "GB", "IN", "BR", "JP", "CA")
_DEVICES = ("desktop", "mobile", "tablet")
_TERMS = ("queue", "rate limit", "bigquery", "pricing", "webhook", "retry", "dashboard")


def _properties(name: str, rng: random.Random) -> dict[str, Any]:
    properties: dict[str, Any] = {"country": rng.choice(_COUNTRIES), "device": rng.choice(_DEVICES)}
    if name == "page_view":
        properties["path"] = rng.choice(_PAGES)
    elif name == "search":
        properties["query"] = rng.choice(_TERMS)
        properties["results"] = rng.randint(0, 40)
    elif name in ("add_to_cart", "checkout"):
        properties["items"] = rng.randint(1, 5)
    elif name == "purchase":
        properties["amount_cents"] = rng.randint(500, 50_000)
        properties["currency"] = "USD"
    return properties


def rows(count: int = ROWS, *, seed: int = SEED) -> Iterator[dict[str, Any]]:
    """The sample rows: the same ones for the same `count` and `seed`, in timestamp order."""
    rng = random.Random(seed)  # noqa: S311 - sample data, not secrets
    names = [name for name, _ in _EVENTS]
    weights = [weight for _, weight in _EVENTS]
    offsets = sorted(rng.randrange(_SPAN_SECONDS * 1000) for _ in range(count))
    users = [f"user_{index:04d}" for index in range(1, 401)]
    for offset_ms in offsets:
        name = rng.choices(names, weights)[0]
        timestamp = _START + dt.timedelta(milliseconds=offset_ms)
        yield {
            "name": name,
            "user_id": rng.choice(users),
            "timestamp": timestamp.isoformat().replace("+00:00", "Z"),
            "properties": json.dumps(_properties(name, rng), sort_keys=True),
        }


@dataclass(frozen=True)
class _Deadlines:
    retry: Any
    timeout: float


def _row_count(client: bigquery.Client, table_id: str, limits: _Deadlines) -> int:
    job = client.query(
        f"SELECT COUNT(*) AS n FROM `{table_id}`",  # noqa: S608 - our own table name
        job_retry=None,
        retry=limits.retry,
        timeout=limits.timeout,
    )
    result = job.result(retry=limits.retry, timeout=limits.timeout, job_retry=None)
    return int(next(iter(result))["n"])


def _seed(client: bigquery.Client, count: int, limits: _Deadlines) -> int:
    """Creates the dataset and table if missing and fills an empty table; returns the rows it added."""
    dataset_id = f"{client.project}.{DATASET}"
    table_id = f"{dataset_id}.{TABLE}"
    client.create_dataset(
        bigquery.Dataset(dataset_id), exists_ok=True, retry=limits.retry, timeout=limits.timeout
    )
    client.create_table(
        bigquery.Table(table_id, schema=SCHEMA), exists_ok=True, retry=limits.retry, timeout=limits.timeout
    )
    if _row_count(client, table_id, limits) > 0:
        return 0
    batch: list[dict[str, Any]] = []
    added = 0
    for row in rows(count):
        batch.append(row)
        if len(batch) == _BATCH:
            added += _insert(client, table_id, batch, limits)
            batch = []
    if batch:
        added += _insert(client, table_id, batch, limits)
    return added


def _insert(client: bigquery.Client, table_id: str, batch: list[dict[str, Any]], limits: _Deadlines) -> int:
    errors = client.insert_rows_json(table_id, batch, retry=limits.retry, timeout=limits.timeout)
    if errors:
        raise RuntimeError(f"inserting sample rows into {table_id} failed: {errors[:3]}")
    return len(batch)


async def seed(backend: BigQueryBackend, count: int = ROWS) -> int:
    """Seeds the sample table (idempotent); returns how many rows it added (0 when it held rows)."""
    try:
        added = await backend.call(_seed, count, _Deadlines(backend.retry, backend.timeout))
    except google_errors.GoogleAPIError as error:
        raise RuntimeError(f"seeding {DATASET}.{TABLE} failed: {error}") from error
    logger.info("sample dataset ready", extra={"table": f"{DATASET}.{TABLE}", "rows_added": added})
    return added
