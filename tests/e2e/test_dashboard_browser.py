"""The dashboard in a real browser (Debian's Chromium driven by Playwright), through Envoy, on the e2e
stack: log in, counts that match the API, search by id and by a payload word, a job's page, retry from
the UI, pause and resume, a bulk retry of a search's failed jobs, and the refusal without credentials.

Every wait is on the page's state (Playwright's auto-waiting `expect`), which the page's own live
refresh brings within its poll interval. Screenshots go to test-artifacts/dashboard/.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Browser, Page, expect, sync_playwright
from playwright.sync_api import Error as PlaywrightError

from devstack.services import REPO_ROOT
from devstack.stack import Stack

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = REPO_ROOT / "test-artifacts" / "dashboard"
BOARD = "/api/bull-board"
# "Counts and lists update without a reload, within 2 s."
LIVE_MS = 2_000
WAIT_MS = 30_000  # a busy machine: the worker may be slow to start a job


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), "no /usr/bin/chromium: run `make setup` (scripts/bootstrap installs it)"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, stack: Stack) -> Iterator[Page]:
    """Logged in: the browser answers the login prompt with the admin's credentials."""
    user, password = stack.admin_auth
    context = browser.new_context(
        http_credentials={"username": user, "password": password},
        viewport={"width": 1280, "height": 800},
        base_url=stack.gateway_url,
    )
    opened = context.new_page()
    opened.on("dialog", lambda dialog: dialog.accept())  # the confirmation of a destructive form
    yield opened
    context.close()


def _submit(stack: Stack, task: str, payload: dict[str, object], job_id: str) -> None:
    answer = requests.post(
        f"{stack.gateway_url}/api/job",
        json={"queue": "analytics", "task": task, "payload": payload, "jobId": job_id},
        auth=stack.admin_auth,
        timeout=10,
    )
    assert answer.status_code == 200, answer.text


def _job(stack: Stack, job_id: str) -> dict[str, object]:
    answer = requests.get(
        f"{stack.gateway_url}/api/job/status", params={"id": job_id}, auth=stack.admin_auth, timeout=10
    )
    return dict(answer.json())


def _attempts(stack: Stack, job_id: str) -> int:
    """How many failed attempts the API reports for the job."""
    errors = _job(stack, job_id).get("attemptErrors", [])
    assert isinstance(errors, list)
    return len(errors)


def _attempted_twice(stack: Stack, job_id: str) -> bool:
    return _attempts(stack, job_id) == 2


def _shot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def _delayed_job(stack: Stack) -> str:
    """A job on `ratelimit` that waits ten minutes: it stays in the counts and lists while looked for."""
    answer = requests.post(
        f"{stack.gateway_url}/api/job",
        json={"queue": "ratelimit", "task": "diagnostics.echo", "payload": {}, "delayMs": 600_000},
        auth=stack.admin_auth,
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    job_id: str = answer.json()["id"]
    return job_id


def test_log_in_and_see_the_queues_with_the_api_counts(page: Page, stack: Stack) -> None:
    response = page.goto(f"{BOARD}/")
    assert response is not None and response.status == 200
    queues = requests.get(f"{stack.gateway_url}/api/queues", auth=stack.admin_auth, timeout=10).json()[
        "queues"
    ]
    assert {q["name"] for q in queues} == {"analytics", "bigquery", "ratelimit"}
    for queue in queues:
        row = page.locator(f'tr[data-queue="{queue["name"]}"]')
        expect(row).to_be_visible()
        for state in ("waiting", "delayed", "active", "completed", "failed"):
            # int64 counts are strings in proto JSON, left out when 0. The page refreshes itself: a count
            # that moved since the API read is caught up with within the wait.
            expect(row.locator(f'td[data-count="{state}"]')).to_have_text(
                str(queue["counts"].get(state, "0"))
            )
    expect(page.locator("svg.chart")).to_be_visible()
    _shot(page, "overview")

    # Live: a job submitted now shows in the counts without a reload, within 2 s (the page re-reads its
    # live part every second).
    page.evaluate("window.notReloaded = true")
    delayed = next(q for q in queues if q["name"] == "ratelimit")["counts"].get("delayed", "0")
    _delayed_job(stack)
    cell = page.locator('tr[data-queue="ratelimit"] td[data-count="delayed"]')
    expect(cell).to_have_text(str(int(delayed) + 1), timeout=LIVE_MS)
    assert page.evaluate("window.notReloaded") is True

    # And lists: a queue's delayed jobs, newest first, take in the next one without a reload.
    page.goto(f"{BOARD}/queues/ratelimit?state=delayed")
    page.evaluate("window.notReloaded = true")
    expect(page.locator(f'tr[data-job="{_delayed_job(stack)}"]')).to_be_visible(timeout=LIVE_MS)
    assert page.evaluate("window.notReloaded") is True


def test_search_by_id_and_by_payload_word_then_open_the_job(page: Page, stack: Stack) -> None:
    word = f"zebra{uuid.uuid4().hex[:8]}"
    job_id = f"browser-{uuid.uuid4().hex[:10]}"
    _submit(stack, "diagnostics.echo", {"note": f"invoice for {word}"}, job_id)

    page.goto(f"{BOARD}/search")
    page.get_by_label("Text").fill(job_id)
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.locator(f'tr[data-job="{job_id}"]')).to_be_visible()

    page.get_by_label("Text").fill(word)
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.locator("#result-count")).to_contain_text("1 job found")
    expect(page.locator(f'tr[data-job="{job_id}"]')).to_be_visible()
    _shot(page, "search")

    page.locator(f'tr[data-job="{job_id}"] a').first.click()
    expect(page.locator("h1")).to_contain_text(job_id)
    expect(page.locator("pre.json").first).to_contain_text(word)
    expect(page.locator("#job-state")).to_have_text("completed", timeout=WAIT_MS)


def test_retry_a_failed_job_from_the_ui_and_see_the_new_attempt(page: Page, stack: Stack) -> None:
    job_id = f"browser-fail-{uuid.uuid4().hex[:8]}"
    _submit(stack, "diagnostics.fail", {"retryable": False, "message": "asked to fail"}, job_id)
    page.goto(f"{BOARD}/jobs/{job_id}")
    expect(page.locator("#job-state")).to_have_text("failed", timeout=WAIT_MS)
    expect(page.locator("#attempts li")).to_have_count(1)
    expect(page.locator("#attempts")).to_contain_text("asked to fail")
    _shot(page, "job")

    page.get_by_role("button", name="Retry").click()
    expect(page.locator("#notice")).to_contain_text("retry done")
    # The retried job runs again, fails again: its second attempt shows up in the detail.
    expect(page.locator("#attempts li")).to_have_count(2, timeout=WAIT_MS)
    assert _attempts(stack, job_id) == 2


def test_pause_and_resume_a_queue(page: Page, stack: Stack) -> None:
    page.goto(f"{BOARD}/queues/bigquery")
    expect(page.locator("#queue-status")).to_contain_text("running")
    page.get_by_role("button", name="Pause queue").click()
    expect(page.locator("#queue-status")).to_contain_text("paused")
    assert next(q for q in _queues(stack) if q["name"] == "bigquery")["paused"] is True
    _shot(page, "queue")
    page.get_by_role("button", name="Resume queue").click()
    expect(page.locator("#queue-status")).to_contain_text("running")
    assert next(q for q in _queues(stack) if q["name"] == "bigquery")["paused"] is False


def test_bulk_retry_the_failed_jobs_matching_a_search(page: Page, stack: Stack) -> None:
    word = f"bulk{uuid.uuid4().hex[:8]}"
    ids = [f"browser-bulk-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    for job_id in ids:
        _submit(stack, "diagnostics.fail", {"retryable": False, "message": f"batch {word} failed"}, job_id)
    page.goto(f"{BOARD}/search?q={word}&state=failed")
    # The page does not refresh a search: reload until the three have failed.
    _until(page, lambda: _reloaded(page).locator("tr[data-job]").count() == 3, "three failed jobs found")

    page.locator("#bulk-matching-action").select_option("retry")
    page.get_by_role("button", name="Apply to all matching…").click()
    expect(page.locator("#dry-run-count")).to_have_text("3")  # the count first, nothing done yet
    before = {i: _attempts(stack, i) for i in ids}
    assert set(before.values()) == {1}, before
    page.locator("#confirm-bulk").click()
    expect(page.locator("#notice")).to_contain_text("retry: 3 of 3 jobs")
    for job_id in ids:  # each ran again and failed again: a second attempt
        _until(page, functools.partial(_attempted_twice, stack, job_id), f"{job_id} run again")
    # The overview after the run (jobs in it, the chart with bars): the README's picture is a copy of it
    # (docs/dashboard-overview.png), taken by hand; a test run never rewrites a tracked file.
    page.goto(f"{BOARD}/")
    expect(page.locator('tr[data-queue="analytics"] td[data-count="failed"]')).not_to_have_text("0")
    _shot(page, "overview-after-run")


def test_a_narrow_screen_the_dark_theme_and_the_keyboard(page: Page, stack: Stack) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{BOARD}/queues/analytics")
    # Nothing wider than the screen: wide tables scroll inside themselves.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.keyboard.press("Tab")
    expect(page.locator("a.skip")).to_be_focused()
    page.get_by_role("button", name="Dark theme").click()
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(13, 17, 23)"
    page.reload()
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")  # remembered
    _shot(page, "queue-narrow-dark")


def test_without_credentials_the_dashboard_refuses(browser: Browser, stack: Stack) -> None:
    context = browser.new_context(base_url=stack.gateway_url)
    try:
        anonymous = context.new_page()
        # The browser gets the login prompt (401 + WWW-Authenticate: Basic); headless, nobody answers it,
        # and the navigation ends there.
        with (
            anonymous.expect_response(lambda r: r.url.endswith(f"{BOARD}/")) as seen,
            pytest.raises(PlaywrightError, match="ERR_INVALID_AUTH_CREDENTIALS"),
        ):
            anonymous.goto(f"{BOARD}/")
        assert seen.value.status == 401
        assert seen.value.headers["www-authenticate"].lower().startswith("basic")
        expect(anonymous.locator("tr[data-queue]")).to_have_count(0)
    finally:
        context.close()


def _until(page: Page, condition: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    """Polls `condition` (state read from the API or the page) until it holds, or fails saying what."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s} s"
        page.wait_for_timeout(250)


def _reloaded(page: Page) -> Page:
    page.reload()
    return page


def _queues(stack: Stack) -> list[dict[str, object]]:
    answer = requests.get(f"{stack.gateway_url}/api/queues", auth=stack.admin_auth, timeout=10)
    return list(answer.json()["queues"])
