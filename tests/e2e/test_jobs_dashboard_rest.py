"""The dashboard's Jobs RPCs through Envoy as REST: search, bulk by filter (admin only, with a dry run
first), remove, logs and the metrics history."""

from __future__ import annotations

import time
import uuid

import requests

from devstack.stack import Stack


def _wait_failed(http: requests.Session, url: str, job_id: str, timeout: float) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        status: dict[str, object] = http.get(
            f"{url}/api/job/status", params={"id": job_id}, timeout=10
        ).json()
        if status.get("state") == "JOB_STATE_FAILED" or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


def test_search_bulk_retry_logs_and_metrics_over_rest(stack: Stack, http: requests.Session) -> None:
    url = stack.gateway_url
    word = f"batch{uuid.uuid4().hex[:8]}"
    ids = []
    for _ in range(3):
        submitted = http.post(
            f"{url}/api/job",
            json={"queue": "analytics", "task": "diagnostics.fail", "maxAttempts": 1,
                  "payload": {"retryable": False, "message": f"{word} went wrong"}},
            timeout=10,
        )  # fmt: skip
        assert submitted.status_code == 200, submitted.text
        ids.append(submitted.json()["id"])
    for job_id in ids:
        assert _wait_failed(http, url, job_id, timeout=30)["state"] == "JOB_STATE_FAILED"

    search = {"filter.payloadText": word, "filter.states": "JOB_STATE_FAILED", "pageSize": "2"}
    found = http.get(f"{url}/api/job/search", params=search, timeout=10)
    assert found.status_code == 200, found.text
    page = found.json()
    assert page["total"] == "3", page
    assert [job["id"] for job in page["jobs"]] == [ids[2], ids[1]]
    by_error = http.get(f"{url}/api/job/search", params={"filter.errorText": f"{word} wrong"}, timeout=10)
    assert {job["id"] for job in by_error.json()["jobs"]} == set(ids)

    logs = http.get(f"{url}/api/job/logs", params={"id": ids[0]}, timeout=10).json()
    assert logs["lines"][0]["level"] == "LOG_LEVEL_WARNING"
    assert word in logs["lines"][0]["message"]

    bulk = {"action": "BULK_ACTION_RETRY", "filter": {"payloadText": word, "states": ["JOB_STATE_FAILED"]}}
    refused = http.post(f"{url}/api/job/bulk", json={**bulk, "dryRun": True}, timeout=10)
    assert refused.status_code == 401, "bulk actions are admin only"
    dry = http.post(f"{url}/api/job/bulk", json={**bulk, "dryRun": True}, auth=stack.admin_auth, timeout=10)
    assert dry.status_code == 200, dry.text
    assert dry.json()["affected"] == "3" and dry.json()["dryRun"]
    done = http.post(f"{url}/api/job/bulk", json=bulk, auth=stack.admin_auth, timeout=10).json()
    assert done["affected"] == "3"
    # The audit says what the bulk action was asked (its action and filter) and what it did.
    trail = http.get(f"{url}/api/audit", params={"page_size": 20}, auth=stack.admin_auth, timeout=10).json()
    bulk_entries = [e for e in trail["entries"] if e["operation"].endswith("/BulkJobAction")]
    done_entry = next(e for e in bulk_entries if "dry_run" not in e.get("detail", ""))
    assert "BULK_ACTION_RETRY" in done_entry["detail"] and word in done_entry["detail"]
    assert "affected: 3" in done_entry["detail"]
    for job_id in ids:
        assert _wait_failed(http, url, job_id, timeout=30)["state"] == "JOB_STATE_FAILED"
    detail = http.get(f"{url}/api/job/status", params={"id": ids[0]}, timeout=10).json()
    assert len(detail["attemptErrors"]) == 2, "the retried job ran again"
    assert [t["state"] for t in detail["transitions"]].count("JOB_STATE_ACTIVE") == 2

    removed = http.post(f"{url}/api/job/remove", json={"id": ids[0]}, auth=stack.admin_auth, timeout=10)
    assert removed.status_code == 200, removed.text
    assert http.get(f"{url}/api/job/status", params={"id": ids[0]}, timeout=10).status_code == 404

    metrics = http.get(f"{url}/api/queues/analytics/metrics", timeout=10)
    assert metrics.status_code == 200, metrics.text
    minutes = metrics.json()["minutes"]
    assert len(minutes) >= 60
    assert sum(int(minute.get("failed", 0)) for minute in minutes) >= 6
