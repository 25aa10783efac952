"""The BigQuery backend against the emulator: the sample dataset, queries, pages and BigQuery's errors."""

from __future__ import annotations

import pytest
from google.api_core import exceptions as google_errors
from google.cloud import bigquery

from services.warehouse import sample_dataset
from services.warehouse.backend import BigQueryBackend, JobRef, QueryRequest, job_labels
from tests.bigquery_emulator import bigquery_backend, bigquery_emulator, sample_events

__all__ = ["bigquery_backend", "bigquery_emulator", "sample_events"]


def test_sample_rows_are_deterministic() -> None:
    first = list(sample_dataset.rows(50))
    assert first == list(sample_dataset.rows(50))
    assert {row["name"] for row in sample_dataset.rows()} >= {"page_view", "signup", "purchase"}


async def test_seeding_is_idempotent(bigquery_backend: BigQueryBackend, sample_events: str) -> None:
    assert await sample_dataset.seed(bigquery_backend) == 0
    job = await bigquery_backend.start_query(QueryRequest(sql=f"SELECT COUNT(*) AS n FROM {sample_events}"))  # noqa: S608
    await bigquery_backend.wait_done(JobRef(job.job_id, job.location), 10)
    page = await bigquery_backend.rows_page(JobRef(job.job_id, job.location), page_size=10, page_token=None)
    assert page.rows == [{"n": sample_dataset.ROWS}]


async def test_a_parameterised_query_pages_through_its_result(
    bigquery_backend: BigQueryBackend, sample_events: str
) -> None:
    job = await bigquery_backend.start_query(
        QueryRequest(
            sql=f"SELECT user_id FROM {sample_events} WHERE name = @name ORDER BY timestamp, user_id",  # noqa: S608
            parameters=[bigquery.ScalarQueryParameter("name", "STRING", "page_view")],
        )
    )
    ref = JobRef(job.job_id, job.location)
    await bigquery_backend.wait_done(ref, 10)
    expected = [row for row in sample_dataset.rows() if row["name"] == "page_view"]
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        page = await bigquery_backend.rows_page(ref, page_size=500, page_token=token)
        pages += 1
        assert page.total_rows == len(expected)
        seen += [row["user_id"] for row in page.rows]
        token = page.next_page_token
        if not token:
            break
    assert len(seen) == len(expected)
    assert pages == -(-len(expected) // 500)


async def test_a_syntax_error_is_bigquerys_invalid_query(bigquery_backend: BigQueryBackend) -> None:
    job = await bigquery_backend.start_query(QueryRequest(sql="SELEC 1"))
    with pytest.raises(google_errors.BadRequest) as raised:
        await bigquery_backend.wait_done(JobRef(job.job_id, job.location), 10)
    assert raised.value.errors[0]["reason"] == "invalidQuery"


async def test_every_query_carries_its_labels_cap_and_prefix(bigquery_backend: BigQueryBackend) -> None:
    labels = job_labels(principal="key:Billing", job_id="query-1")
    job = await bigquery_backend.start_query(QueryRequest(sql="SELECT 1 AS one", labels=labels))
    assert job.job_id.startswith("switchboard_")
    # As sent (the emulator keeps neither labels nor caps on the jobs it reports).
    assert job.labels == {"switchboard_principal": "key_billing", "switchboard_job": "query-1"}
    assert job.maximum_bytes_billed == bigquery_backend.settings.bigquery_default_max_bytes_billed
