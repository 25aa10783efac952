"""Live settings through Envoy as a REST client sees them: 409 on a stale version, 400 naming the field and
its bound, the change applied by the running jobs service at once, and the history with who and the diff."""

from __future__ import annotations

import ipaddress
import json
import time
from datetime import datetime

import requests

from devstack.stack import Stack


def _settings(http: requests.Session, stack: Stack) -> dict[str, object]:
    response = http.get(f"{stack.gateway_url}/api/settings", auth=stack.admin_auth, timeout=10)
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def _patch(http: requests.Session, stack: Stack, body: dict[str, object]) -> requests.Response:
    return http.patch(f"{stack.gateway_url}/api/settings", json=body, auth=stack.admin_auth, timeout=10)


def _version(settings: dict[str, object]) -> int:
    # int64 is a string in proto JSON; version 0 is left out.
    return int(str(settings.get("version", "0")))


def test_a_stale_version_is_409_json_with_the_current_version(stack: Stack, http: requests.Session) -> None:
    version = _version(_settings(http, stack))
    changed = _patch(
        http,
        stack,
        {
            "settings": {"bigquery": {"cacheTtlSeconds": 120}},
            "updateMask": "bigquery.cacheTtlSeconds",
            "expectedVersion": str(version),
        },
    )
    assert changed.status_code == 200, changed.text
    assert _version(changed.json()) == version + 1
    assert changed.json()["bigquery"]["cacheTtlSeconds"] == 120

    stale = _patch(
        http,
        stack,
        {
            "settings": {"bigquery": {"cacheTtlSeconds": 60}},
            "updateMask": "bigquery.cacheTtlSeconds",
            "expectedVersion": str(version),
        },
    )
    assert stale.status_code == 409, stale.text
    assert stale.headers["content-type"].startswith("application/json")
    body = stale.json()
    assert body["code"] == 10
    assert f"at version {version + 1}, not {version}" in body["message"]
    info = next(detail for detail in body["details"] if "metadata" in detail)
    assert info["metadata"]["current_version"] == str(version + 1)
    assert _settings(http, stack)["bigquery"]["cacheTtlSeconds"] == 120  # type: ignore[index]


def test_an_invalid_value_is_400_json_naming_the_field_and_bound(
    stack: Stack, http: requests.Session
) -> None:
    before = _settings(http, stack)
    response = _patch(
        http,
        stack,
        {
            "settings": {"queuePolicies": {"analytics": {"maxAttempts": 500, "timeout": "0.001s"}}},
            "updateMask": "queuePolicies.analytics.maxAttempts,queuePolicies.analytics.timeout",
        },
    )
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == 3
    violations = {
        violation["field"]: violation["description"]
        for detail in body["details"]
        for violation in detail.get("fieldViolations", [])
    }
    assert violations == {
        "queue_policies.analytics.max_attempts": "must be from 1 to 100; got 500",
        "queue_policies.analytics.timeout": "must be from 10 ms to 86400000 ms; got 1",
    }
    assert "queue_policies.analytics.max_attempts: must be from 1 to 100" in body["message"]
    assert _settings(http, stack) == before, "nothing changed"


def test_a_change_is_applied_live_and_kept_in_the_history(stack: Stack, http: requests.Session) -> None:
    before = _settings(http, stack)
    old_concurrency = before["queuePolicies"]["bigquery"]["concurrency"]  # type: ignore[index]
    changed = _patch(
        http,
        stack,
        {
            "settings": {"queuePolicies": {"bigquery": {"concurrency": old_concurrency + 1}}},
            "updateMask": "queuePolicies.bigquery.concurrency",
            "expectedVersion": str(_version(before)),
        },
    )
    assert changed.status_code == 200, changed.text
    new_version = _version(changed.json())

    # The running jobs service answers with the policy in force: the new one within 2 s, without a restart.
    answered = time.monotonic()
    while True:
        queues = http.get(f"{stack.gateway_url}/api/queues", timeout=10).json()["queues"]
        in_force = next(queue for queue in queues if queue["name"] == "bigquery")["policy"]["concurrency"]
        if in_force == old_concurrency + 1 or time.monotonic() - answered > 2.0:
            break
        time.sleep(0.02)
    assert in_force == old_concurrency + 1, "the jobs service did not apply the change within 2 s"

    history = http.get(
        f"{stack.gateway_url}/api/settings/history",
        params={"page_size": 1},
        auth=stack.admin_auth,
        timeout=10,
    )
    assert history.status_code == 200, history.text
    page = history.json()
    newest = page["revisions"][0]
    assert int(newest["version"]) == new_version
    assert newest["principal"] == f"admin:{stack.admin_user}", "who made the change"
    assert newest["changeTime"].endswith("Z")
    assert [(c["path"], json.loads(c["oldValue"]), json.loads(c["newValue"])) for c in newest["changes"]] == [
        ("queue_policies.bigquery.concurrency", old_concurrency, old_concurrency + 1)
    ]
    if new_version > 1:
        assert page["nextPageToken"], "older changes are on the next page"

    # And the audit trail has the call: who, from where, what it asked, allowed.
    audit = http.get(
        f"{stack.gateway_url}/api/audit", params={"page_size": 50}, auth=stack.admin_auth, timeout=10
    ).json()
    entry = next(e for e in audit["entries"] if e["operation"].endswith("/UpdateSettings"))
    assert (entry["outcome"], entry["principal"]) == ("allowed", f"admin:{stack.admin_user}")
    assert "queue_policies" in entry["detail"] and "bigquery" in entry["detail"], entry
    # The address the gateway saw: this machine's, whichever of them the connection came from.
    assert ipaddress.ip_address(entry["source"]), entry
    recorded = datetime.fromisoformat(entry["time"].replace("Z", "+00:00")).timestamp()
    assert abs(recorded - time.time()) < 60, "when: just now"
