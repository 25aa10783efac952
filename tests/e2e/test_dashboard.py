"""The dashboard's HTTP surface through Envoy (and on its own port): login, redirects, pages that show
what the API says, and the protection of every action (read-only 405, cross-site and token 403)."""

from __future__ import annotations

import contextlib
import re
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator

import pytest
import requests

from devstack.stack import Stack

BOARD = "/api/bull-board"
# Every action the dashboard offers, with a form body it accepts.
ACTIONS = {
    "/queues/analytics/pause": {},
    "/queues/analytics/resume": {},
    "/queues/analytics/clean": {"state": "completed", "older_than_seconds": "86400"},
    "/queues/analytics/retry-failed": {},
    "/queues/analytics/promote-delayed": {},
    "/jobs/some-job/retry": {},
    "/jobs/some-job/cancel": {},
    "/jobs/some-job/remove": {},
    "/jobs/some-job/promote": {},
    "/jobs/some-job/duplicate": {},
    "/bulk": {"action": "retry", "id": "some-job"},
    "/bulk?confirm": {"action": "remove", "q": "some", "confirm": "yes"},
    "/rate-limits/put": {"name": "ro-rule", "limit": "5", "period_seconds": "60", "burst": "0"},
    "/rate-limits/api/delete": {},
}


def _token(page: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert found, "no CSRF token on the page"
    return found.group(1)


def _origin(stack: Stack) -> dict[str, str]:
    return {"Origin": stack.gateway_url, "Referer": f"{stack.gateway_url}{BOARD}/"}


def _paused(http: requests.Session, stack: Stack, queue: str) -> bool:
    queues = http.get(f"{stack.gateway_url}/api/queues", auth=stack.admin_auth, timeout=10).json()["queues"]
    return bool(next(q for q in queues if q["name"] == queue)["paused"])


@contextlib.contextmanager
def read_only(stack: Stack, http: requests.Session) -> Iterator[None]:
    def switch(on: bool) -> None:
        body = {"settings": {"dashboardReadOnly": on}, "updateMask": "dashboardReadOnly"}
        answer = http.patch(f"{stack.gateway_url}/api/settings", json=body, auth=stack.admin_auth, timeout=10)
        assert answer.status_code == 200, answer.text

    switch(True)
    try:
        yield
    finally:
        switch(False)


@pytest.mark.parametrize("where", ["gateway", "dashboard port"])
def test_no_or_wrong_credentials_get_401_with_the_login_prompt(
    stack: Stack, http: requests.Session, where: str
) -> None:
    base = stack.gateway_url if where == "gateway" else f"http://127.0.0.1:{stack.dashboard_port}"
    for auth in (None, (stack.admin_user, "not-the-password-at-all")):
        for path in ("/", "/queues/analytics", "/search?q=x", "/static/dashboard.css"):
            answer = http.get(f"{base}{BOARD}{path}", auth=auth, timeout=10, allow_redirects=False)
            assert answer.status_code == 401, (path, answer.status_code)
            assert answer.headers["WWW-Authenticate"].startswith("Basic realm=")
            # Through Envoy the refusal is the gateway's own (its authorizer): the dashboard is not reached.
            gateway_refused = answer.headers["Content-Type"].startswith("application/json")
            assert gateway_refused == (where == "gateway"), answer.headers["Content-Type"]
        posted = http.post(f"{base}{BOARD}/queues/analytics/pause", auth=auth, timeout=10)
        assert posted.status_code == 401
    assert not _paused(http, stack, "analytics")


def test_short_paths_redirect_to_the_dashboard(stack: Stack, http: requests.Session) -> None:
    for path in ("/bull-board", BOARD):
        answer = http.get(f"{stack.gateway_url}{path}", timeout=10, allow_redirects=False)
        assert answer.status_code in (301, 302), path
        assert answer.headers["Location"].endswith(f"{BOARD}/")


def test_the_overview_shows_every_queue_with_the_api_counts(stack: Stack, http: requests.Session) -> None:
    page = http.get(f"{stack.gateway_url}{BOARD}/", auth=stack.admin_auth, timeout=10)
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    queues = http.get(f"{stack.gateway_url}/api/queues", auth=stack.admin_auth, timeout=10).json()["queues"]
    for queue in queues:
        assert f'data-queue="{queue["name"]}"' in page.text
        row = page.text.split(f'data-queue="{queue["name"]}"', 1)[1].split("</tr>", 1)[0]
        assert f'data-field="workers">{queue["workers"]}<' in row
    workers = http.get(f"{stack.gateway_url}/api/workers", auth=stack.admin_auth, timeout=10).json()[
        "workers"
    ]
    live = f"{len(workers)} live worker{'' if len(workers) == 1 else 's'}"
    assert f"{live}, capacity {sum(w['capacity'] for w in workers)} jobs at once" in page.text
    assert "<svg" in page.text  # the last hour's chart, inline
    css = http.get(f"{stack.gateway_url}{BOARD}/static/dashboard.css", auth=stack.admin_auth, timeout=10)
    assert css.status_code == 200 and "prefers-color-scheme" in css.text


def test_a_write_needs_the_same_origin_and_the_page_token(stack: Stack, http: requests.Session) -> None:
    url = f"{stack.gateway_url}{BOARD}/queues/ratelimit/pause"
    token = _token(
        http.get(f"{stack.gateway_url}{BOARD}/queues/ratelimit", auth=stack.admin_auth, timeout=10).text
    )
    forged = {"Origin": "https://evil.example", "Referer": "https://evil.example/"}
    refusals = [
        http.post(url, data={"csrf": token}, headers=forged, auth=stack.admin_auth, timeout=10),
        http.post(url, data={"csrf": token}, auth=stack.admin_auth, timeout=10),  # no Origin nor Referer
        http.post(url, data={}, headers=_origin(stack), auth=stack.admin_auth, timeout=10),
        http.post(url, data={"csrf": "0" * 40}, headers=_origin(stack), auth=stack.admin_auth, timeout=10),
        http.get(url, auth=stack.admin_auth, timeout=10),  # an action is never a GET
    ]
    assert [r.status_code for r in refusals] == [403, 403, 403, 403, 405]
    assert not _paused(http, stack, "ratelimit")

    done = http.post(
        url,
        data={"csrf": token},
        headers=_origin(stack),
        auth=stack.admin_auth,
        timeout=10,
        allow_redirects=False,
    )
    try:
        assert done.status_code == 303, done.text
        assert _paused(http, stack, "ratelimit")
        audit = http.get(f"{stack.gateway_url}/api/audit", auth=stack.admin_auth, timeout=10).json()[
            "entries"
        ]
        mine = [e for e in audit if e["operation"] == f"dashboard POST {BOARD}/queues/ratelimit/pause"]
        assert [e["outcome"] for e in mine[:5]] == ["allowed", "denied", "denied", "denied", "denied"]
        assert mine[0]["principal"] == f"admin:{stack.admin_user}"
    finally:
        resume = http.post(
            f"{stack.gateway_url}{BOARD}/queues/ratelimit/resume",
            data={"csrf": token},
            headers=_origin(stack),
            auth=stack.admin_auth,
            timeout=10,
        )
        assert resume.ok


def test_read_only_mode_refuses_every_action_with_405_and_shows_none(
    stack: Stack, http: requests.Session
) -> None:
    job = http.post(
        f"{stack.gateway_url}/api/job",
        json={"queue": "analytics", "task": "diagnostics.fail", "payload": {"retryable": False},
              "jobId": f"ro-{uuid.uuid4().hex[:8]}"},
        auth=stack.admin_auth,
        timeout=10,
    ).json()  # fmt: skip
    pages = ["/", "/queues/analytics", "/queues/analytics?state=failed", f"/jobs/{job['id']}",
             f"/search?q={job['id']}", "/workers", "/rate-limits"]  # fmt: skip
    # A token the operator got before the switch does not help.
    token = _token(
        http.get(f"{stack.gateway_url}{BOARD}/queues/analytics", auth=stack.admin_auth, timeout=10).text
    )
    with read_only(stack, http):
        for path in pages:
            page = http.get(f"{stack.gateway_url}{BOARD}{path}", auth=stack.admin_auth, timeout=10)
            assert page.status_code == 200, path
            assert 'method="post"' not in page.text, f"an action is shown on {path} in read-only mode"
            assert "read-only" in page.text
        for path, form in ACTIONS.items():
            answer = http.post(
                f"{stack.gateway_url}{BOARD}{path.split('?')[0]}",
                data={**form, "csrf": token},
                headers=_origin(stack),
                auth=stack.admin_auth,
                timeout=10,
                allow_redirects=False,
            )
            assert answer.status_code == 405, (path, answer.status_code)
            assert answer.headers["Allow"] == "GET"
        assert not _paused(http, stack, "analytics")
    # Out of read-only mode the same pages offer the actions again.
    page = http.get(f"{stack.gateway_url}{BOARD}/queues/analytics", auth=stack.admin_auth, timeout=10)
    assert 'method="post"' in page.text


def test_the_read_only_pages_show_what_the_apis_say(stack: Stack, http: requests.Session) -> None:
    def page(path: str) -> str:
        answer = http.get(f"{stack.gateway_url}{BOARD}{path}", auth=stack.admin_auth, timeout=10)
        assert answer.status_code == 200, (path, answer.text[:300])
        return answer.text

    api = f"{stack.gateway_url}/api"
    workers = http.get(f"{api}/workers", auth=stack.admin_auth, timeout=10).json()["workers"]
    assert workers and all(w["id"] in page("/workers") for w in workers)
    rules = http.get(f"{api}/rate-limits", auth=stack.admin_auth, timeout=10).json()["rules"]
    limits = page("/rate-limits")
    assert rules and all(r["name"] in limits for r in rules)
    usage = page(f"/rate-limits?rule={rules[0]['name']}&key=dashboard-test")
    assert "Remaining" in usage
    assert "dashboard_read_only" in page("/settings")
    assert "<table" in page("/audit")
    assert 'method="post"' not in page("/settings") + page("/audit"), "settings and the audit: read only"


def test_an_admin_puts_and_deletes_a_rule_from_the_rate_limits_page(
    stack: Stack, http: requests.Session
) -> None:
    api = f"{stack.gateway_url}/api/rate-limits"
    name = f"board-{uuid.uuid4().hex[:8]}"
    token = _token(
        http.get(f"{stack.gateway_url}{BOARD}/rate-limits", auth=stack.admin_auth, timeout=10).text
    )

    def post(path: str, form: dict[str, str]) -> requests.Response:
        return http.post(f"{stack.gateway_url}{BOARD}{path}", data={**form, "csrf": token},
                         headers=_origin(stack), auth=stack.admin_auth, timeout=10)  # fmt: skip

    bad = post("/rate-limits/put", {"name": name, "limit": "many", "period_seconds": "60"})
    assert bad.status_code == 400 and "limit: give a whole number" in bad.text
    saved = post("/rate-limits/put", {"name": name, "limit": "7", "period_seconds": "30", "burst": "2"})
    assert saved.status_code == 200 and f"rule {name} saved" in saved.text, saved.text[:300]
    rule = next(
        r for r in http.get(api, auth=stack.admin_auth, timeout=10).json()["rules"] if r["name"] == name
    )
    assert (rule["limit"], rule["period"], rule.get("burst")) == ("7", "30s", "2")
    listed = http.get(f"{stack.gateway_url}{BOARD}/rate-limits", auth=stack.admin_auth, timeout=10).text
    assert f'data-rule="{name}"' in listed, "the page lists the new rule"
    deleted = post(f"/rate-limits/{name}/delete", {})
    assert deleted.status_code == 200 and f"rule {name} deleted" in deleted.text
    assert name not in [r["name"] for r in http.get(api, auth=stack.admin_auth, timeout=10).json()["rules"]]
    trail = http.get(f"{stack.gateway_url}/api/audit", params={"page_size": 30}, auth=stack.admin_auth,
                     timeout=10).json()["entries"]  # fmt: skip
    assert any(e["operation"].endswith("/PutRule") and e["target"] == name for e in trail)


def test_a_bad_filter_or_an_unknown_job_says_what_to_do(stack: Stack, http: requests.Session) -> None:
    bad = http.get(
        f"{stack.gateway_url}{BOARD}/queues/analytics?state=sleeping", auth=stack.admin_auth, timeout=10
    )
    assert bad.status_code == 400 and "unknown state" in bad.text
    since = http.get(
        f"{stack.gateway_url}{BOARD}/search?q=x&since=yesterday", auth=stack.admin_auth, timeout=10
    )
    assert since.status_code == 400 and "since must be a date" in since.text
    missing = http.get(
        f"{stack.gateway_url}{BOARD}/jobs/no-such-job-{uuid.uuid4().hex}", auth=stack.admin_auth, timeout=10
    )
    assert missing.status_code == 404
    queue = http.get(f"{stack.gateway_url}{BOARD}/queues/nope", auth=stack.admin_auth, timeout=10)
    assert queue.status_code == 404 and "overview" in queue.text


def test_job_actions_promote_duplicate_remove_and_clean(stack: Stack, http: requests.Session) -> None:
    def act(path: str, form: dict[str, str] | None = None) -> requests.Response:
        page = http.get(f"{stack.gateway_url}{BOARD}/queues/analytics", auth=stack.admin_auth, timeout=10)
        answer = http.post(
            f"{stack.gateway_url}{BOARD}{path}",
            data={**(form or {}), "csrf": _token(page.text)},
            headers=_origin(stack),
            auth=stack.admin_auth,
            timeout=10,
            allow_redirects=False,
        )
        assert answer.status_code == 303, (path, answer.status_code, answer.text[:300])
        return answer

    def status(job_id: str) -> requests.Response:
        return http.get(
            f"{stack.gateway_url}/api/job/status", params={"id": job_id}, auth=stack.admin_auth, timeout=10
        )

    job_id = f"actions-{uuid.uuid4().hex[:8]}"
    submitted = http.post(
        f"{stack.gateway_url}/api/job",
        json={
            "queue": "analytics",
            "task": "diagnostics.echo",
            "payload": {"n": 1},
            "jobId": job_id,
            "delayMs": 600_000,
        },
        auth=stack.admin_auth,
        timeout=10,
    )
    assert submitted.status_code == 200 and submitted.json()["state"] == "JOB_STATE_DELAYED"

    copy = act(f"/jobs/{job_id}/duplicate").headers["Location"]
    copy_id = copy.split("/jobs/", 1)[1].split("?", 1)[0]
    assert copy_id != job_id and status(copy_id).json()["payload"] == {"n": 1}

    act(f"/jobs/{job_id}/promote")
    assert status(job_id).json()["state"] != "JOB_STATE_DELAYED"

    act(f"/jobs/{copy_id}/remove")
    assert status(copy_id).status_code == 404

    cleaned = act("/queues/analytics/clean", {"state": "completed", "older_than_seconds": "0"})
    assert "removed" in cleaned.headers["Location"]

    # Bulk on ticked jobs: first the count and a confirmation (nothing done), then the action.
    later = f"actions-{uuid.uuid4().hex[:8]}"
    http.post(
        f"{stack.gateway_url}/api/job",
        json={
            "queue": "analytics",
            "task": "diagnostics.echo",
            "payload": {},
            "jobId": later,
            "delayMs": 600_000,
        },
        auth=stack.admin_auth,
        timeout=10,
    )
    page = http.get(f"{stack.gateway_url}{BOARD}/queues/analytics", auth=stack.admin_auth, timeout=10)
    form = {"action": "cancel", "id": later, "queue": "analytics", "csrf": _token(page.text)}
    url = f"{stack.gateway_url}{BOARD}/bulk"
    asked = http.post(url, data=form, headers=_origin(stack), auth=stack.admin_auth, timeout=10)
    assert asked.status_code == 200 and 'id="dry-run-count">1<' in asked.text
    assert status(later).json()["state"] == "JOB_STATE_DELAYED"
    done = http.post(
        url, data={**form, "confirm": "yes"}, headers=_origin(stack), auth=stack.admin_auth, timeout=10,
        allow_redirects=False,
    )  # fmt: skip
    assert done.status_code == 303 and "cancel:+1+of+1+jobs" in done.headers["Location"]
    assert status(later).json()["state"] == "JOB_STATE_CANCELLED"


def test_retry_all_failed_and_promote_all_delayed_of_a_queue(stack: Stack, http: requests.Session) -> None:
    def submit(**extra: object) -> str:
        job_id = f"queue-action-{uuid.uuid4().hex[:8]}"
        body = {"queue": "bigquery", "task": "diagnostics.fail", "jobId": job_id, **extra}
        answer = http.post(f"{stack.gateway_url}/api/job", json=body, auth=stack.admin_auth, timeout=10)
        assert answer.status_code == 200, answer.text
        return job_id

    def state(job_id: str) -> str:
        answer = http.get(
            f"{stack.gateway_url}/api/job/status", params={"id": job_id}, auth=stack.admin_auth, timeout=10
        )
        return str(answer.json()["state"])

    def act(path: str) -> str:
        page = http.get(f"{stack.gateway_url}{BOARD}/queues/bigquery", auth=stack.admin_auth, timeout=10)
        answer = http.post(
            f"{stack.gateway_url}{BOARD}{path}", data={"csrf": _token(page.text)}, headers=_origin(stack),
            auth=stack.admin_auth, timeout=10, allow_redirects=False,
        )  # fmt: skip
        assert answer.status_code == 303, answer.text[:300]
        return urllib.parse.unquote_plus(answer.headers["Location"])

    failed = submit(payload={"retryable": False})
    deadline = time.monotonic() + 30
    while state(failed) != "JOB_STATE_FAILED":
        assert time.monotonic() < deadline, "the job did not fail"
        time.sleep(0.1)
    delayed = submit(payload={"retryable": False}, delayMs=600_000)

    notice = act("/queues/bigquery/retry-failed")
    assert re.search(r"retried [1-9]\d* failed jobs of bigquery", notice), notice
    assert (
        state(failed) != "JOB_STATE_FAILED"
        or len(
            http.get(
                f"{stack.gateway_url}/api/job/status",
                params={"id": failed},
                auth=stack.admin_auth,
                timeout=10,
            ).json()["attemptErrors"]
        )
        == 2
    )

    notice = act("/queues/bigquery/promote-delayed")
    assert re.search(r"promoted [1-9]\d* delayed jobs of bigquery", notice), notice
    assert state(delayed) != "JOB_STATE_DELAYED"


def test_the_job_and_workers_pages_show_what_an_operator_needs(stack: Stack, http: requests.Session) -> None:
    """A job's page: its result, its progress, each failed attempt with its error and traceback, the
    timeline with the worker, the task's log lines; the workers page: each worker's host, pid, queues,
    capacity, running jobs and heartbeat."""
    api, word = f"{stack.gateway_url}/api", f"w{uuid.uuid4().hex[:10]}"

    def submit(task: str, payload: dict[str, object]) -> str:
        answer = http.post(f"{api}/job", json={"queue": "analytics", "task": task, "payload": payload},
                           auth=stack.admin_auth, timeout=10)  # fmt: skip
        assert answer.status_code == 200, answer.text
        job_id: str = answer.json()["id"]
        return job_id

    def job(job_id: str) -> dict[str, object]:
        found: dict[str, object] = http.get(
            f"{api}/job/status", params={"id": job_id}, auth=stack.admin_auth, timeout=10
        ).json()
        return found

    def until(job_id: str, accept: Callable[[dict[str, object]], object], what: str) -> dict[str, object]:
        deadline = time.monotonic() + 30
        while not accept(seen := job(job_id)):
            assert time.monotonic() < deadline, f"{what}: last seen {seen}"
            time.sleep(0.05)
        return seen

    def page(path: str) -> str:
        answer = http.get(f"{stack.gateway_url}{BOARD}{path}", auth=stack.admin_auth, timeout=10)
        assert answer.status_code == 200, (path, answer.text[:300])
        return answer.text

    failed = submit("diagnostics.fail", {"retryable": False, "message": f"boom {word}"})
    until(failed, lambda j: j["state"] == "JOB_STATE_FAILED", "the failing job failed")
    shown = page(f"/jobs/{failed}")
    assert f"NonRetryableError: boom {word}" in shown
    assert "<summary>Traceback</summary>" in shown
    assert f"attempt 1 is about to fail: boom {word}" in shown, "the task's log line"
    timeline = shown[shown.index('id="timeline"') : shown.index("</ol>", shown.index('id="timeline"'))]
    assert "waiting" in timeline and "active" in timeline and "failed" in timeline

    echoed = submit("diagnostics.echo", {"word": word})
    until(echoed, lambda j: j["state"] == "JOB_STATE_COMPLETED", "the echo completed")
    result = page(f"/jobs/{echoed}").split("<h2>Result</h2>", 1)[1].split("</section>", 1)[0]
    assert word in result

    sleeping = submit("diagnostics.sleep", {"ms": 20_000})
    try:
        running = until(
            sleeping, lambda j: j["state"] == "JOB_STATE_ACTIVE" and j.get("progress"), "progress"
        )
        worker_id = str(running["worker"])
        assert re.search(r'id="job-progress">\d+%<', page(f"/jobs/{sleeping}"))
        assert worker_id in page(f"/jobs/{sleeping}")
        workers_listed = http.get(f"{api}/workers", auth=stack.admin_auth, timeout=10).json()["workers"]
        listed = next(w for w in workers_listed if w["id"] == worker_id)
        deadline = time.monotonic() + 10  # the next heartbeats count the running job
        while True:
            workers = page("/workers")
            row = workers[workers.index(f'<td class="mono">{worker_id}</td>') :].split("</tr>", 1)[0]
            active = re.search(r'data-field="active">(\d+)<', row)
            if active and int(active.group(1)) >= 1:
                break
            assert time.monotonic() < deadline, row
            time.sleep(0.2)
        assert f">{listed['host']}<" in row and f">{listed['pid']}<" in row
        assert f">{listed['capacity']}<" in row and "analytics" in row
    finally:
        http.post(f"{api}/job/cancel", json={"id": sleeping}, auth=stack.admin_auth, timeout=10)


def test_a_queue_page_shows_its_policy_and_its_last_24_hours(stack: Stack, http: requests.Session) -> None:
    queues = http.get(f"{stack.gateway_url}/api/queues", auth=stack.admin_auth, timeout=10).json()["queues"]
    policy = next(q for q in queues if q["name"] == "bigquery")["policy"]
    page = http.get(f"{stack.gateway_url}{BOARD}/queues/bigquery", auth=stack.admin_auth, timeout=10).text
    shown = page.split('<details class="policy">', 1)[1].split("</details>", 1)[0]
    assert f"<dt>Max attempts</dt><dd>{policy['maxAttempts']}</dd>" in shown
    assert f"<dt>Concurrency</dt><dd>{policy['concurrency']}</dd>" in shown
    for title in (
        "bigquery: completed and failed per minute, last 24 h",
        "bigquery: enqueue to start, per minute",
        "bigquery: run time, per minute",
    ):
        assert '<svg class="chart" viewBox="0 0 ' in page and f'aria-label="{title}"' in page, title
