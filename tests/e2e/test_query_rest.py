"""RunQuery end to end: JSON through Envoy to the bigquery service, the jobs service, a worker and the
BigQuery emulator; the cache, single flight across two bigquery processes, and the wait bounds."""

from __future__ import annotations

import asyncio
import re
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import requests
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery
from google.protobuf import json_format

from devstack.bigquery_emulator import BigQueryEmulator
from devstack.ports import free_port
from devstack.redis import RedisServer
from devstack.services import ServiceProcess
from devstack.stack import Stack
from switchboard.bigquery.v1 import bigquery_pb2, bigquery_pb2_grpc
from tests.polling import eventually

README_QUERY = "SELECT name, COUNT(*) AS n FROM switchboard_sample.events GROUP BY name ORDER BY n DESC"


def _unique_query() -> tuple[str, str]:
    """A query no other test ran (its own cache entry and flight), and the mark that finds its jobs."""
    mark = uuid.uuid4().hex
    sql = (
        f"SELECT name, COUNT(*) AS n, '{mark}' AS run FROM switchboard_sample.events "  # noqa: S608
        "GROUP BY name ORDER BY name"
    )
    return sql, mark


def _query(stack: Stack, body: dict[str, Any]) -> requests.Response:
    return requests.post(f"{stack.gateway_url}/api/query", json=body, timeout=40)


def _bigquery_jobs(emulator: BigQueryEmulator, mark: str) -> int:
    """BigQuery jobs the emulator ran whose SQL holds `mark` (other tests' jobs, and the connection
    test's `SELECT 1`, are not counted)."""
    client = bigquery.Client(
        project=emulator.project,
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options=ClientOptions(api_endpoint=emulator.endpoint),
    )
    try:
        return sum(
            1
            for job in client.list_jobs(all_users=True, timeout=10)
            if mark in (getattr(job, "query", None) or "")
        )
    finally:
        client.close()  # type: ignore[no-untyped-call]


def test_the_readme_query_answers_rows(stack: Stack, sample_events: str) -> None:
    answer = _query(stack, {"sql": README_QUERY})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["complete"] is True and body["state"] == "QUERY_STATE_DONE", body
    assert [field["name"] for field in body["schema"]] == ["name", "n"]
    assert body["rows"] and set(body["rows"][0]) == {"name", "n"}
    counts = [int(row["n"]) for row in body["rows"]]
    assert counts == sorted(counts, reverse=True)
    assert int(body["totalRows"]) == len(body["rows"])


def test_a_second_identical_query_is_cached_and_starts_no_bigquery_job(
    stack: Stack, bigquery_emulator: BigQueryEmulator, sample_events: str
) -> None:
    sql, mark = _unique_query()
    first = _query(stack, {"sql": sql})
    assert first.status_code == 200, first.text
    assert first.json()["complete"] is True and first.json().get("cached", False) is False, first.json()
    assert _bigquery_jobs(bigquery_emulator, mark) == 1
    # The same query written otherwise: the guard's normalised SQL is what the cache compares.
    second = _query(stack, {"sql": "  " + sql.replace("SELECT", "select", 1) + "  -- again"})
    assert second.status_code == 200, second.text
    assert second.json()["cached"] is True and second.json()["complete"] is True
    assert second.json()["rows"] == first.json()["rows"]
    assert second.json()["jobId"] == first.json()["jobId"]
    assert _bigquery_jobs(bigquery_emulator, mark) == 1


def test_use_cache_false_runs_the_query_again(
    stack: Stack, bigquery_emulator: BigQueryEmulator, sample_events: str
) -> None:
    sql, mark = _unique_query()
    assert _query(stack, {"sql": sql}).json()["complete"] is True
    fresh = _query(stack, {"sql": sql, "useCache": False})
    assert fresh.status_code == 200, fresh.text
    assert fresh.json().get("cached", False) is False and fresh.json()["complete"] is True
    assert _bigquery_jobs(bigquery_emulator, mark) == 2
    # Its result replaced the cached one.
    again = _query(stack, {"sql": sql})
    assert again.json()["cached"] is True and again.json()["jobId"] == fresh.json()["jobId"]


def test_a_result_over_the_cache_bound_is_served_but_not_cached(
    stack: Stack, bigquery_emulator: BigQueryEmulator, sample_events: str
) -> None:
    # The first page as JSON: about 2.4 MB, over the 1 MiB default entry bound.
    mark = uuid.uuid4().hex
    sql = f"SELECT n, REPEAT('x', 1200) AS padding, '{mark}' AS run FROM UNNEST(GENERATE_ARRAY(1, 2000)) AS n"  # noqa: S608
    for attempt in (1, 2):
        answer = _query(stack, {"sql": sql, "pageSize": 2000})
        assert answer.status_code == 200, answer.text[:500]
        body = answer.json()
        assert body["complete"] is True and len(body["rows"]) == 2000
        assert body.get("cached", False) is False, attempt
        assert "over the cache's entry bound of 1,048,576 bytes" in body["notCachedReason"]
        assert _bigquery_jobs(bigquery_emulator, mark) == attempt


@pytest.mark.parametrize("wait_ms", ["-1", "30001", "1000000000000"])
def test_wait_ms_out_of_range_is_refused_with_400(
    stack: Stack, bigquery_emulator: BigQueryEmulator, wait_ms: str
) -> None:
    sql, mark = _unique_query()
    answer = _query(stack, {"sql": sql, "waitMs": wait_ms})
    assert answer.status_code == 400, answer.text
    message = answer.json()["message"]
    assert message.startswith("wait_ms:") and "1-30,000ms" in message, message
    assert _bigquery_jobs(bigquery_emulator, mark) == 0


def _scrape_misses(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    found = re.search(r"^switchboard_query_cache_misses_total (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


@pytest.fixture
def two_bigquery_processes(
    stack: Stack, redis_server: RedisServer, bigquery_emulator: BigQueryEmulator, tmp_path: Path
) -> Iterator[list[tuple[ServiceProcess, int]]]:
    """Two more bigquery service processes on the stack's Redis and jobs service, each with /metrics."""
    started = []
    try:
        for index in range(2):
            metrics_port = free_port()
            run_dir = tmp_path / f"bigquery-{index}"
            run_dir.mkdir()
            process = ServiceProcess(
                "bigquery",
                run_dir=run_dir,
                env={
                    "REDIS_HOST": "127.0.0.1",
                    "REDIS_PORT": str(redis_server.port),
                    "GRPC_HOST": "127.0.0.1",
                    "SWITCHBOARD_ADMIN_USER": stack.admin_user,
                    "SWITCHBOARD_ADMIN_PASSWORD": stack.admin_password,
                    "SWITCHBOARD_SERVICE_KEY": stack.service_key,
                    "JOBS_ADDRESS": stack.services["jobs"].address,
                    "METRICS_PORT": str(metrics_port),
                    **bigquery_emulator.env,
                },
            )
            process.start()
            started.append((process, metrics_port))
        for process, _ in started:
            process.wait_ready()
        yield started
    finally:
        for process, _ in started:
            process.stop()


async def test_ten_concurrent_identical_queries_over_two_processes_start_one_bigquery_job(
    stack: Stack,
    bigquery_emulator: BigQueryEmulator,
    sample_events: str,
    two_bigquery_processes: list[tuple[ServiceProcess, int]],
) -> None:
    sql, mark = _unique_query()
    queue_url = f"{stack.gateway_url}/api/queues/bigquery"
    channels = [grpc.aio.insecure_channel(process.address) for process, _ in two_bigquery_processes]
    request = bigquery_pb2.RunQueryRequest(sql=sql, wait_ms=30_000)
    # The queue holds its jobs until every call has missed the cache: all ten are concurrent for sure.
    paused = await asyncio.to_thread(
        requests.post, f"{queue_url}/pause", json={}, auth=stack.admin_auth, timeout=10
    )
    assert paused.status_code == 200, paused.text
    try:
        calls = [
            asyncio.ensure_future(
                bigquery_pb2_grpc.QueryServiceStub(channels[index % 2]).RunQuery(request, timeout=40)
            )
            for index in range(10)
        ]
        await eventually(
            lambda: asyncio.to_thread(
                lambda: sum(_scrape_misses(port) for _, port in two_bigquery_processes)
            ),
            lambda misses: misses >= 10,
            timeout=20,
            what="all ten calls to miss the cache",
        )
    finally:
        resumed = await asyncio.to_thread(
            requests.post, f"{queue_url}/resume", json={}, auth=stack.admin_auth, timeout=10
        )
        assert resumed.status_code == 200, resumed.text
    try:
        answers = await asyncio.gather(*calls)
    finally:
        for channel in channels:
            await channel.close()
    assert all(answer.complete and answer.state == bigquery_pb2.QUERY_STATE_DONE for answer in answers)
    rows = [json_format.MessageToDict(answer)["rows"] for answer in answers]
    assert rows[0] and all(each == rows[0] for each in rows)
    assert len({answer.job_id for answer in answers}) == 1
    assert await asyncio.to_thread(_bigquery_jobs, bigquery_emulator, mark) == 1


def test_a_failed_query_answers_failed_with_bigquerys_error(
    stack: Stack, bigquery_emulator: BigQueryEmulator, sample_events: str
) -> None:
    missing = f"no_such_table_{uuid.uuid4().hex}"
    answer = _query(stack, {"sql": f"SELECT name FROM switchboard_sample.{missing}"})  # noqa: S608
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["state"] == "QUERY_STATE_FAILED" and body.get("complete", False) is False, body
    assert missing in body["error"]["message"], body
    assert body["jobId"]
    # A failure is not cached, and the next identical query is not stuck to the failed job.
    again = _query(stack, {"sql": f"SELECT name FROM switchboard_sample.{missing}"})  # noqa: S608
    assert again.json()["state"] == "QUERY_STATE_FAILED"
    assert again.json()["jobId"] != body["jobId"]


def test_a_query_not_done_within_wait_ms_answers_its_job_to_follow(stack: Stack, sample_events: str) -> None:
    sql, _ = _unique_query()
    queue_url = f"{stack.gateway_url}/api/queues/bigquery"
    assert requests.post(f"{queue_url}/pause", json={}, auth=stack.admin_auth, timeout=10).status_code == 200
    try:
        started = time.monotonic()
        answer = _query(stack, {"sql": sql, "waitMs": 300})
        waited = time.monotonic() - started
    finally:
        assert (
            requests.post(f"{queue_url}/resume", json={}, auth=stack.admin_auth, timeout=10).status_code
            == 200
        )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body.get("complete", False) is False and body["state"] == "QUERY_STATE_PENDING", body
    assert not body.get("rows")
    assert 0.3 <= waited < 10
    status = requests.get(f"{stack.gateway_url}/api/job/status", params={"id": body["jobId"]}, timeout=10)
    assert status.status_code == 200 and status.json()["task"] == "bigquery.query", status.text


def _patch_bigquery_settings(stack: Stack, field: str, value: int) -> None:
    url = f"{stack.gateway_url}/api/settings"
    current = requests.get(url, auth=stack.admin_auth, timeout=10).json()
    changed = requests.patch(
        url,
        json={
            "settings": {"bigquery": {field: value}},
            "updateMask": f"bigquery.{field}",
            "expectedVersion": str(current.get("version", "0")),
        },
        auth=stack.admin_auth,
        timeout=10,
    )
    assert changed.status_code == 200, changed.text


async def test_the_wait_bound_follows_the_live_settings(stack: Stack, sample_events: str) -> None:
    sql, _ = _unique_query()
    await asyncio.to_thread(_patch_bigquery_settings, stack, "maxWaitMs", 5_000)
    try:
        refused = await eventually(
            lambda: asyncio.to_thread(_query, stack, {"sql": sql, "waitMs": "6000"}),
            lambda answer: answer.status_code == 400,
            timeout=10,
            what="RunQuery to apply the new bigquery.max_wait_ms",
            interval=0.05,
        )
        assert "1-5,000ms" in refused.json()["message"]
    finally:
        await asyncio.to_thread(_patch_bigquery_settings, stack, "maxWaitMs", 30_000)
    accepted = await eventually(
        lambda: asyncio.to_thread(_query, stack, {"sql": sql, "waitMs": "6000"}),
        lambda answer: answer.status_code == 200,
        timeout=10,
        what="RunQuery to apply the restored bigquery.max_wait_ms",
        interval=0.05,
    )
    assert accepted.json()["complete"] is True
