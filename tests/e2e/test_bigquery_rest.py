"""BigQueryService through Envoy against the emulator: submit, follow, page the results, the guard's
refusals, an admin's DML (audited), failures as BigQuery reports them, and cancelling a queued query."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from devstack.bigquery_emulator import BigQueryEmulator
from devstack.redis import RedisServer
from devstack.stack import Stack
from services.bigquery import completion

ENDED = {"QUERY_STATE_DONE", "QUERY_STATE_FAILED", "QUERY_STATE_CANCELLED"}


def _submit(http: requests.Session, stack: Stack, body: dict[str, Any], **kwargs: Any) -> requests.Response:
    return http.post(f"{stack.gateway_url}/api/bigquery", json=body, timeout=15, **kwargs)


def _results(http: requests.Session, stack: Stack, **params: Any) -> requests.Response:
    return http.get(f"{stack.gateway_url}/api/bigquery/results", params=params, timeout=15)


def _until_ended(http: requests.Session, stack: Stack, job_id: str, timeout: float = 30) -> dict[str, Any]:
    """Polls the results (the API a client follows a query with) until the query ended."""
    deadline = time.monotonic() + timeout
    while True:
        answer = _results(http, stack, job_id=job_id, page_size=1)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        if body.get("state") in ENDED:
            return body
        assert time.monotonic() < deadline, f"query {job_id} did not end within {timeout} s: {body}"
        assert body.get("rows", []) == [], "no rows before the query is done"
        time.sleep(0.05)


def _job(http: requests.Session, stack: Stack, job_id: str) -> dict[str, Any]:
    status: dict[str, Any] = http.get(
        f"{stack.gateway_url}/api/job/status", params={"id": job_id}, timeout=10
    ).json()
    return status


@pytest.fixture(scope="module", autouse=True)
def query_worker(stack: Stack) -> None:
    """Waits for a worker that registered `bigquery.query` (the jobs API accepts a task only then)."""
    deadline = time.monotonic() + 30
    while True:
        workers = requests.get(f"{stack.gateway_url}/api/workers", timeout=10).json().get("workers", [])
        if any("bigquery.query" in worker.get("tasks", []) for worker in workers):
            return
        assert time.monotonic() < deadline, f"no worker registered bigquery.query: {workers}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def bigquery_client(bigquery_emulator: BigQueryEmulator) -> Iterator[bigquery.Client]:
    client = bigquery.Client(
        project=bigquery_emulator.project,
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options=ClientOptions(api_endpoint=bigquery_emulator.endpoint),
    )
    yield client
    client.close()  # type: ignore[no-untyped-call]


def _bigquery_jobs(client: bigquery.Client) -> int:
    return sum(1 for _ in client.list_jobs(max_results=100_000, timeout=10))


def test_a_parameterised_query_answers_typed_json(
    stack: Stack, http: requests.Session, sample_events: str
) -> None:
    submitted = _submit(
        http,
        stack,
        {
            "sql": (
                "SELECT name, user_id, timestamp, @big AS big, CAST(NULL AS STRING) AS nothing, "
                "STRUCT(@n AS n, [1.5, 2.5] AS xs) AS nested, [@n, @n + 1] AS ints "
                "FROM switchboard_sample.events WHERE name = @name ORDER BY timestamp, user_id LIMIT 3"
            ),
            "parameters": [
                {"name": "name", "type": "STRING", "value": "purchase"},
                {"name": "n", "type": "INT64", "value": "7"},
                {"name": "big", "type": "INT64", "value": "9007199254740993"},
            ],
        },
    )
    assert submitted.status_code == 200, submitted.text
    job_id = submitted.json()["jobId"]
    assert _until_ended(http, stack, job_id)["state"] == "QUERY_STATE_DONE"
    page = _results(http, stack, job_id=job_id).json()
    assert page["totalRows"] == "3"
    assert [column["name"] for column in page["schema"]] == [
        "name", "user_id", "timestamp", "big", "nothing", "nested", "ints"
    ]  # fmt: skip
    row = page["rows"][0]
    assert row["name"] == "purchase"
    assert row["big"] == "9007199254740993", "INT64 as a string, every digit kept"
    assert row["nothing"] is None
    assert row["nested"] == {"n": "7", "xs": [1.5, 2.5]}
    assert row["ints"] == ["7", "8"]
    assert row["timestamp"].startswith("2026-11-") and row["timestamp"].endswith("Z")
    # The job records where BigQuery keeps the result.
    progress = _job(http, stack, job_id)["progress"]
    assert progress["bigquery_job_id"].startswith("switchboard_")


def test_2500_rows_page_through_in_exactly_3_pages(stack: Stack, http: requests.Session) -> None:
    submitted = _submit(http, stack, {"sql": "SELECT x FROM UNNEST(GENERATE_ARRAY(1, 2500)) AS x ORDER BY x"})
    job_id = submitted.json()["jobId"]
    assert _until_ended(http, stack, job_id)["state"] == "QUERY_STATE_DONE"
    seen: list[int] = []
    token = ""
    pages = 0
    while True:
        params: dict[str, Any] = {"job_id": job_id, "page_size": 1000}
        if token:
            params["page_token"] = token
        page = _results(http, stack, **params).json()
        pages += 1
        assert page["totalRows"] == "2500"
        seen += [int(row["x"]) for row in page["rows"]]
        token = page.get("nextPageToken", "")
        if not token:
            break
    assert pages == 3
    assert seen == list(range(1, 2501)), "nothing lost, nothing repeated"


def test_results_refuse_bad_tokens_unknown_jobs_and_huge_pages(stack: Stack, http: requests.Session) -> None:
    job_id = _submit(http, stack, {"sql": "SELECT 1 AS one"}).json()["jobId"]
    _until_ended(http, stack, job_id)
    bad_token = _results(http, stack, job_id=job_id, page_token="not-a-token")
    assert bad_token.status_code == 400
    assert "page_token" in bad_token.json()["message"]
    assert _results(http, stack, job_id="query-nope").status_code == 404
    assert _results(http, stack, job_id=job_id, page_size=100_000).status_code == 400


def test_a_dry_run_answers_the_schema_at_once(
    stack: Stack, http: requests.Session, sample_events: str
) -> None:
    sql = "SELECT name, timestamp FROM switchboard_sample.events"
    answer = _submit(http, stack, {"sql": sql, "dry_run": True})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body.get("jobId", "") == ""
    assert [(c["name"], c["type"]) for c in body["schema"]] == [
        ("name", "STRING"),
        ("timestamp", "TIMESTAMP"),
    ]


def test_a_syntax_error_is_refused_at_once_with_the_parsers_position(
    stack: Stack, http: requests.Session
) -> None:
    # The guard parses the SQL before any job exists, so a syntax error never reaches BigQuery.
    answer = _submit(http, stack, {"sql": "SELECT 1 +"})
    assert answer.status_code == 400
    assert "column 10" in answer.json()["message"]


def test_a_query_bigquery_refuses_fails_for_good_with_its_message_and_position(
    stack: Stack, http: requests.Session
) -> None:
    job_id = _submit(http, stack, {"sql": "SELECT no_such_function(1)"}).json()["jobId"]
    ended = _until_ended(http, stack, job_id)
    assert ended["state"] == "QUERY_STATE_FAILED"
    assert ended["error"]["reason"] == "invalidQuery"
    assert "no_such_function" in ended["error"]["message"]
    assert "[1:8]" in ended["error"]["message"], "BigQuery's position"
    job = _job(http, stack, job_id)
    assert job["state"] == "JOB_STATE_FAILED"
    assert job["attemptsMade"] == 1, "not retried"
    assert job["error"]["type"] == "BigQueryInvalidQuery"
    assert not job["error"].get("retryable", False)


def test_a_missing_table_fails_not_found(stack: Stack, http: requests.Session) -> None:
    job_id = _submit(http, stack, {"sql": "SELECT * FROM switchboard_sample.no_such_table"}).json()["jobId"]
    ended = _until_ended(http, stack, job_id)
    assert ended["state"] == "QUERY_STATE_FAILED"
    assert ended["error"]["reason"] == "notFound"
    assert "no_such_table" in ended["error"]["message"]
    job = _job(http, stack, job_id)
    assert job["attemptsMade"] == 1
    assert job["error"]["type"] == "BigQueryNotFound"


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM switchboard_sample.events WHERE TRUE",
        "DROP TABLE switchboard_sample.events",
        "CREATE TABLE switchboard_sample.copy AS SELECT * FROM switchboard_sample.events",
        "INSERT INTO switchboard_sample.events (name) VALUES ('x')",
        "SELECT 1; SELECT 2",
        "SELECT 1 /* ; */ ; DROP TABLE switchboard_sample.events",
        "SELECT * FROM other_dataset.events",
    ],
)
def test_the_guard_refuses_with_400_and_runs_nothing(
    stack: Stack, http: requests.Session, bigquery_client: bigquery.Client, sql: str
) -> None:
    before = _bigquery_jobs(bigquery_client)
    answer = _submit(http, stack, {"sql": sql})
    assert answer.status_code == 400, answer.text
    assert answer.json()["message"]
    assert _bigquery_jobs(bigquery_client) == before, "no BigQuery job ran"


def test_an_admin_may_run_dml_and_the_audit_shows_it(
    stack: Stack, http: requests.Session, sample_events: str
) -> None:
    sql = (
        "CREATE OR REPLACE TABLE switchboard_sample.admin_copy AS SELECT name FROM switchboard_sample.events"
    )
    refused = _submit(http, stack, {"sql": sql, "allow_writes": True})
    assert refused.status_code == 403, "allow_writes is the admin's alone"
    answer = _submit(http, stack, {"sql": sql, "allowWrites": True}, auth=stack.admin_auth)
    assert answer.status_code == 200, answer.text
    job_id = answer.json()["jobId"]
    assert _until_ended(http, stack, job_id)["state"] == "QUERY_STATE_DONE"
    entries = http.get(f"{stack.gateway_url}/api/audit", auth=stack.admin_auth, timeout=10).json()["entries"]
    entry = next(e for e in entries if e.get("target") == job_id)
    assert entry["operation"].endswith("/SubmitQuery")
    assert entry["principal"].startswith("admin:")
    assert "allow_writes" in entry["detail"] and "CREATE" in entry["detail"]


def test_cancelling_a_queued_query_ends_it_cancelled_never_run(
    stack: Stack, http: requests.Session, bigquery_client: bigquery.Client
) -> None:
    url = stack.gateway_url
    assert http.post(f"{url}/api/queues/bigquery/pause", auth=stack.admin_auth, timeout=10).status_code == 200
    try:
        before = _bigquery_jobs(bigquery_client)
        job_id = _submit(http, stack, {"sql": "SELECT 42 AS answer"}).json()["jobId"]
        assert _results(http, stack, job_id=job_id).json()["state"] == "QUERY_STATE_PENDING"
        cancelled = http.post(f"{url}/api/bigquery/cancel", json={"job_id": job_id}, timeout=10)
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["state"] == "QUERY_STATE_CANCELLED"
    finally:
        http.post(f"{url}/api/queues/bigquery/resume", auth=stack.admin_auth, timeout=10)
    # The queue runs again: a later query completes, and the cancelled one never ran.
    later = _submit(http, stack, {"sql": "SELECT 1 AS one"}).json()["jobId"]
    assert _until_ended(http, stack, later)["state"] == "QUERY_STATE_DONE"
    assert _results(http, stack, job_id=job_id).json()["state"] == "QUERY_STATE_CANCELLED"
    assert _job(http, stack, job_id)["attemptsMade"] == 0
    assert _bigquery_jobs(bigquery_client) == before + 1, "only the later query reached BigQuery"


def test_the_end_of_a_query_is_announced_once_recorded(
    stack: Stack, http: requests.Session, redis_server: RedisServer
) -> None:
    client = redis_server.client()
    pubsub = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
    pubsub.psubscribe(completion.channel_for("*"))
    try:
        while pubsub.get_message(timeout=1.0) is None and not pubsub.subscribed:
            pass
        job_id = _submit(http, stack, {"sql": "SELECT 1 AS one"}).json()["jobId"]
        deadline = time.monotonic() + 30
        announced = None
        while announced != job_id:
            assert time.monotonic() < deadline, "no announcement of the query's end"
            message = pubsub.get_message(timeout=1.0)
            if message is not None and message["channel"] == completion.channel_for(job_id).encode():
                announced = message["data"].decode()
        # A waiter woken by the notice reads the ended state, not a job still running.
        assert _job(http, stack, job_id)["state"] == "JOB_STATE_COMPLETED"
    finally:
        pubsub.close()
        client.close()


def test_the_readme_quick_start_query_answers_rows(
    stack: Stack, http: requests.Session, sample_events: str
) -> None:
    job_id = _submit(
        http,
        stack,
        {
            "sql": "SELECT name, COUNT(*) AS n FROM switchboard_sample.events\n"
            "  WHERE timestamp >= @since GROUP BY name ORDER BY n DESC",
            "parameters": [{"name": "since", "type": "TIMESTAMP", "value": "2026-11-15T00:00:00Z"}],
        },
    ).json()["jobId"]
    assert _until_ended(http, stack, job_id)["state"] == "QUERY_STATE_DONE"
    page = _results(http, stack, job_id=job_id, page_size=100).json()
    counts = {row["name"]: int(row["n"]) for row in page["rows"]}
    assert counts["page_view"] == max(counts.values())
    assert 0 < sum(counts.values()) < 3_000


def test_submit_refuses_a_cap_above_the_maximum_and_our_own_labels(
    stack: Stack, http: requests.Session
) -> None:
    too_much = _submit(http, stack, {"sql": "SELECT 1 AS one", "maxBytesBilled": str(10**15)})
    assert too_much.status_code == 400
    assert "max_bytes_billed" in too_much.json()["message"]
    lowered = _submit(http, stack, {"sql": "SELECT 1 AS one", "maxBytesBilled": "1000000"})
    assert lowered.status_code == 200, "a request may lower the cap"
    ours = _submit(http, stack, {"sql": "SELECT 1 AS one", "labels": {"switchboard_job": "mine"}})
    assert ours.status_code == 400
    assert "switchboard_" in ours.json()["message"]
    unfit = _submit(http, stack, {"sql": "SELECT 1 AS one", "labels": {"Team Name": "x"}})
    assert unfit.status_code == 400
    assert "lowercase" in unfit.json()["message"]
    fits = _submit(http, stack, {"sql": "SELECT 1 AS one", "labels": {"team": "growth-eu"}})
    assert fits.status_code == 200, fits.text
    # Both accepted queries end here, so that no later test counts their BigQuery jobs.
    for accepted in (lowered, fits):
        assert _until_ended(http, stack, accepted.json()["jobId"])["state"] == "QUERY_STATE_DONE"


def test_a_query_job_submitted_past_the_guard_runs_only_as_a_read(
    stack: Stack, http: requests.Session, bigquery_client: bigquery.Client
) -> None:
    """Straight to the jobs API, with a forged seal: the task checks the SQL itself."""
    before = _bigquery_jobs(bigquery_client)
    forged = http.post(
        f"{stack.gateway_url}/api/job",
        json={
            "queue": "bigquery",
            "task": "bigquery.query",
            "payload": {"sql": "DROP TABLE switchboard_sample.events", "seal": "0" * 64},
        },
        timeout=10,
    )
    assert forged.status_code == 200, forged.text
    job_id = forged.json()["id"]
    ended = _until_ended(http, stack, job_id)
    assert ended["state"] == "QUERY_STATE_FAILED"
    assert "DROP" in ended["error"]["message"]
    assert _bigquery_jobs(bigquery_client) == before, "nothing reached BigQuery"
    # An unsealed read on the default dataset (RunQuery's kind of job) still runs.
    read = http.post(
        f"{stack.gateway_url}/api/job",
        json={
            "queue": "bigquery",
            "task": "bigquery.query",
            "payload": {"sql": "SELECT COUNT(*) AS n FROM events"},
        },
        timeout=10,
    ).json()["id"]
    assert _until_ended(http, stack, read)["state"] == "QUERY_STATE_DONE"
