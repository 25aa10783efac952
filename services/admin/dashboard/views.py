"""The dashboard's pages and actions (aiohttp handlers), under `/api/bull-board/`.

Every request is an admin's (401 with the browser's login prompt otherwise). A page asked for with the
`X-Dashboard-Live` header answers only its live part, which the page's script re-reads every poll
interval. An action is a POST from a form: refused with 405 in read-only mode, with 403 when cross-site or
without the page's CSRF token; else done through the services' APIs, recorded in the audit with the
operator, and answered with a redirect back that says what happened.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlencode

import jinja2
from aiohttp import web

from services.access.audit import AuditEntry, AuditLog, Outcome
from services.admin.dashboard import charts, presentation
from services.admin.dashboard.access import CHALLENGE, DashboardAccess, Operator, Refusal
from services.admin.dashboard.backend import Backend, BackendError
from services.admin.dashboard.search import JobFilter, find
from services.admin.dashboard.settings import DashboardSettings
from services.admin.settings_store import Revision
from switchboard.jobs.v1 import jobs_pb2
from switchboard.ratelimit.v1 import ratelimit_pb2

logger = logging.getLogger(__name__)

PREFIX = "/api/bull-board"
LIVE_HEADER = "X-Dashboard-Live"
MAX_FORM_BYTES = 64 * 1024
MAX_SELECTED = 500
_HERE = Path(__file__).parent
_BULK_ACTIONS = ("retry", "cancel", "remove", "promote")
_BULK_ENUM = {
    "retry": jobs_pb2.BULK_ACTION_RETRY,
    "cancel": jobs_pb2.BULK_ACTION_CANCEL,
    "remove": jobs_pb2.BULK_ACTION_REMOVE,
    "promote": jobs_pb2.BULK_ACTION_PROMOTE,
}
_SINGLE = {
    "retry": ("RetryJob", jobs_pb2.RetryJobRequest),
    "cancel": ("CancelJob", jobs_pb2.CancelJobRequest),
    "promote": ("PromoteJob", jobs_pb2.PromoteJobRequest),
}
# BulkJobAction takes at most this many ids a call.
_BULK_IDS_PER_CALL = 1000
_ASSETS = {path.name: path.read_bytes() for path in (_HERE / "static").iterdir() if path.is_file()}


class SettingsSource(Protocol):
    """What the dashboard reads of the admin service's own settings (the in-process manager)."""

    async def read_only(self) -> bool: ...

    async def current(self) -> dict[str, Any]: ...

    async def history(self, *, page_size: int, page_token: str) -> tuple[list[Revision], str]: ...


@dataclass(frozen=True)
class Page:
    template: str
    context: dict[str, Any]
    live: str | None = None
    """The template of the live part, re-read by the poller."""


Handler = Callable[[web.Request, Operator], Awaitable[Page | web.StreamResponse]]


class Dashboard:
    def __init__(
        self,
        *,
        backend: Backend,
        access: DashboardAccess,
        settings_source: SettingsSource,
        audit: AuditLog | None,
        settings: DashboardSettings,
    ) -> None:
        self._backend = backend
        self._access = access
        self._settings_source = settings_source
        self._audit = audit
        self._settings = settings
        self._templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(_HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._templates.filters.update(presentation.FILTERS)

    def application(self) -> web.Application:
        app = web.Application(client_max_size=MAX_FORM_BYTES)
        for path in ("/bull-board", PREFIX):
            app.router.add_get(path, _to_dashboard)
        pages: dict[str, Handler] = {
            "/": self.overview,
            "/queues/{name}": self.queue,
            "/jobs/{id}": self.job,
            "/search": self.search,
            "/workers": self.workers,
            "/rate-limits": self.rate_limits,
            "/settings": self.settings_page,
            "/audit": self.audit_page,
        }
        for path, handler in pages.items():
            app.router.add_get(PREFIX + path, self._page(handler))
        actions: dict[str, Handler] = {
            "/queues/{name}/pause": self.pause,
            "/queues/{name}/resume": self.resume,
            "/queues/{name}/clean": self.clean,
            "/queues/{name}/retry-failed": self.retry_failed,
            "/queues/{name}/promote-delayed": self.promote_delayed,
            "/jobs/{id}/retry": self.retry,
            "/jobs/{id}/cancel": self.cancel,
            "/jobs/{id}/remove": self.remove,
            "/jobs/{id}/promote": self.promote,
            "/jobs/{id}/duplicate": self.duplicate,
            "/bulk": self.bulk,
            "/rate-limits/put": self.put_rule,
            "/rate-limits/{name}/delete": self.delete_rule,
        }
        for path, handler in actions.items():
            # Any other method: aiohttp answers 405 with `Allow: POST`.
            app.router.add_post(PREFIX + path, self._action(handler))
        app.router.add_get(PREFIX + "/static/{name}", self._asset)
        return app

    # ---- plumbing ----

    async def _asset(self, request: web.Request) -> web.StreamResponse:
        """The stylesheet and the script, for admins only like every other path here."""
        try:
            self._operator(request)
        except Refusal as refusal:
            return self._refusal(refusal)
        name = request.match_info["name"]
        if name not in _ASSETS:
            raise web.HTTPNotFound(text="no such file")
        return web.Response(
            body=_ASSETS[name],
            content_type="text/css" if name.endswith(".css") else "text/javascript",
            headers={"Cache-Control": "private, max-age=300", "X-Content-Type-Options": "nosniff"},
        )

    def _operator(self, request: web.Request) -> Operator:
        return self._access.operator(request.headers, request.remote or "")

    def _page(self, handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def serve(request: web.Request) -> web.StreamResponse:
            try:
                operator = self._operator(request)
                answer = await handler(request, operator)
            except Refusal as refusal:
                return self._refusal(refusal)
            except BackendError as error:
                return self._refusal(Refusal(error.status, error.message))
            if not isinstance(answer, Page):
                return answer
            read_only = await self._read_only()
            context = {
                **answer.context,
                "operator": operator.principal.label,
                "csrf": operator.csrf_token,
                "read_only": read_only,
                "prefix": PREFIX,
                "poll_ms": self._settings.poll_interval_ms,
                "notice": request.query.get("notice", "")[:300],
                "path": request.path,
                "live_template": answer.live,
            }
            template = answer.live if answer.live and request.headers.get(LIVE_HEADER) else answer.template
            html = self._templates.get_template(template).render(context)
            return web.Response(text=html, content_type="text/html", headers=_NO_STORE)

        return serve

    def _action(self, handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def act(request: web.Request) -> web.StreamResponse:
            what = request.path.removeprefix(PREFIX)
            try:
                operator = self._operator(request)
            except Refusal as refusal:
                return self._refusal(refusal)
            try:
                if await self._read_only():
                    raise Refusal(405, "the dashboard is read-only (settings: dashboard_read_only)")
                form = await request.post()
                self._access.check_write(operator, request.headers, str(form.get("csrf", "")))
                answer = await handler(request, operator)
            except Refusal as refusal:
                await self._record(operator, request, what, Outcome.DENIED, refusal.message)
                response = self._refusal(refusal)
                if refusal.status == 405:
                    response.headers["Allow"] = "GET"
                return response
            except BackendError as error:
                await self._record(operator, request, what, Outcome.FAILED, error.message)
                return self._refusal(Refusal(error.status, error.message))
            await self._record(operator, request, what, Outcome.ALLOWED, _notice_of(answer))
            return answer if not isinstance(answer, Page) else self._render(answer, operator)

        return act

    def _render(self, page: Page, operator: Operator) -> web.Response:
        context = {
            **page.context,
            "operator": operator.principal.label,
            "csrf": operator.csrf_token,
            "read_only": False,
            "prefix": PREFIX,
            "poll_ms": self._settings.poll_interval_ms,
            "notice": "",
            "path": "",
            "live_template": None,
        }
        html = self._templates.get_template(page.template).render(context)
        return web.Response(text=html, content_type="text/html", headers=_NO_STORE)

    def _refusal(self, refusal: Refusal) -> web.Response:
        html = self._templates.get_template("refusal.html").render(
            status=refusal.status, message=refusal.message, prefix=PREFIX
        )
        headers = dict(_NO_STORE)
        if refusal.status == 401:
            headers["WWW-Authenticate"] = CHALLENGE
        return web.Response(status=refusal.status, text=html, content_type="text/html", headers=headers)

    async def _read_only(self) -> bool:
        # Read on every request (one small Redis read): a switch shows on the very next page.
        return await self._settings_source.read_only()

    async def _record(
        self, operator: Operator, request: web.Request, what: str, outcome: Outcome, detail: str
    ) -> None:
        if self._audit is None:
            return
        entry = AuditEntry(
            time_ms=int(time.time() * 1000),
            principal=operator.principal.label,
            operation=f"dashboard POST {PREFIX}{what}",
            target=request.match_info.get("name") or request.match_info.get("id") or "jobs",
            outcome=outcome,
            # The gateway appends the address it saw: the last entry is the one a client cannot choose.
            source=(request.headers.get("x-forwarded-for") or request.remote or "")
            .split(",")[-1]
            .strip()[:256],
            detail=detail,
        )
        try:
            await self._audit.record(entry)
        except Exception:  # the action stands whether or not the trail could be written
            logger.warning("audit entry not written", exc_info=True, extra={"operation": entry.operation})

    # ---- pages ----

    async def overview(self, request: web.Request, operator: Operator) -> Page:
        queues = await self._backend.queues(operator)
        workers = await self._backend.workers(operator)
        chart = None
        if not request.headers.get(LIVE_HEADER):
            chart = await self._last_hour(operator, queues)
        return Page(
            "overview.html",
            {"queues": queues, "workers": workers, "capacity": _capacity(workers), "chart": chart,
             "states": presentation.STATES},
            live="overview_live.html",
        )  # fmt: skip

    async def queue(self, request: web.Request, operator: Operator) -> Page:
        name = request.match_info["name"]
        state = request.query.get("state", "latest")
        try:
            value = presentation.state_value(state)
        except ValueError as error:
            raise Refusal(400, str(error)) from None
        queue = next((q for q in await self._backend.queues(operator) if q.name == name), None)
        if queue is None:
            raise Refusal(404, f"no queue {name!r}: pick one on the overview")
        token = request.query.get("page_token", "")[:512]
        jobs, next_token = await self._backend.jobs_page(
            operator, queue=name, state=value, page_size=self._settings.page_size, page_token=token
        )
        day = None if request.headers.get(LIVE_HEADER) else await self._day_charts(operator, name)
        return Page(
            "queue.html",
            {"queue": queue, "state": state, "states": presentation.STATES, "jobs": jobs,
             "next_token": next_token, "page_token": token, "day": day, "bulk_actions": _BULK_ACTIONS,
             "retryable": presentation.RETRYABLE, "cancellable": presentation.CANCELLABLE},
            live="queue_live.html",
        )  # fmt: skip

    async def job(self, request: web.Request, operator: Operator) -> Page:
        job_id = request.match_info["id"][:256]
        job = await self._backend.job(operator, job_id)
        result = await self._backend.result(operator, job_id)
        logs = await self._backend.logs(operator, job_id)
        return Page(
            "job.html",
            {"job": job, "result": result, "logs": logs, "retryable": presentation.RETRYABLE,
             "cancellable": presentation.CANCELLABLE},
            live="job_live.html",
        )  # fmt: skip

    async def search(self, request: web.Request, operator: Operator) -> Page:
        try:
            where = JobFilter.from_query(dict(request.query))
        except ValueError as error:
            raise Refusal(400, str(error)) from None
        searched = bool(where.fields())
        jobs: list[jobs_pb2.Job] = []
        partial = False
        if searched:
            jobs, partial = await find(self._backend, operator, where, limit=100)
        queues = [q.name for q in await self._backend.queues(operator)]
        return Page(
            "search.html",
            {"where": where, "jobs": jobs, "partial": partial, "searched": searched, "queues": queues,
             "states": presentation.STATES, "bulk_actions": _BULK_ACTIONS},
        )  # fmt: skip

    async def workers(self, request: web.Request, operator: Operator) -> Page:
        workers = await self._backend.workers(operator)
        queues = await self._backend.queues(operator)
        served = {name for worker in workers for name in worker.queues}
        return Page(
            "workers.html",
            {"workers": workers, "queues": queues,
             "unserved": [q.name for q in queues if q.name not in served]},
            live="workers_live.html",
        )  # fmt: skip

    async def rate_limits(self, request: web.Request, operator: Operator) -> Page:
        rules = await self._backend.rules(operator)
        rule, key = request.query.get("rule", "")[:128], request.query.get("key", "")[:256]
        usage = await self._backend.usage(operator, rule, key) if rule and key else None
        return Page("limits.html", {"rules": rules, "rule": rule, "key": key, "usage": usage})

    async def put_rule(self, request: web.Request, operator: Operator) -> web.StreamResponse:
        """Adds or changes a rule: the form's name, limit, period (s), burst and shadow mode."""
        form = await request.post()
        name = str(form.get("name", "")).strip()[:128]
        rule = ratelimit_pb2.Rule(
            name=name,
            limit=_form_int(form, "limit", 1, 10**9),
            burst=_form_int(form, "burst", 0, 10**9),
            shadow_mode=form.get("shadow") == "on",
        )
        rule.period.seconds = _form_int(form, "period_seconds", 1, 86_400)
        await self._backend.call(
            operator, self._backend.limits.PutRule, ratelimit_pb2.PutRuleRequest(name=name, rule=rule)
        )
        return _back(request, f"rule {name} saved")

    async def delete_rule(self, request: web.Request, operator: Operator) -> web.StreamResponse:
        name = request.match_info["name"]
        await self._backend.call(
            operator, self._backend.limits.DeleteRule, ratelimit_pb2.DeleteRuleRequest(name=name)
        )
        return _back(request, f"rule {name} deleted")

    async def settings_page(self, request: web.Request, operator: Operator) -> Page:
        current = await self._settings_source.current()
        history, _ = await self._settings_source.history(page_size=50, page_token="")
        return Page("settings.html", {"current": current, "history": history})

    async def audit_page(self, request: web.Request, operator: Operator) -> Page:
        if self._audit is None:
            raise Refusal(503, "no audit trail in this process")
        token = request.query.get("page_token", "")[:64]
        try:
            entries, next_token = await self._audit.list(page_size=50, page_token=token)
        except Exception as error:  # InvalidArgumentError for a bad token
            raise Refusal(400, str(error)) from None
        return Page("audit.html", {"entries": entries, "next_token": next_token})

    # ---- actions ----

    async def pause(self, request: web.Request, operator: Operator) -> web.StreamResponse:
        name = request.match_info["name"]
        await self._backend.call(
            operator, self._backend.jobs.PauseQueue, jobs_pb2.PauseQueueRequest(name=name)
        )
        return _back(request, f"queue {name} paused")

    async def resume(self, request: web.Request, operator: Operator) -> web.StreamResponse:
        name = request.match_info["name"]
        await self._backend.call(
            operator, self._backend.jobs.ResumeQueue, jobs_pb2.ResumeQueueRequest(name=name)
        )
        return _back(request, f"queue {name} resumed")

    async def clean(self, request: web.Request, operator: Operator) -> web.StreamResponse:
        name = request.match_info["name"]
        form = await request.post()
        state = str(form.get("state", ""))
        try:
            value = presentation.state_value(state)
            older = int(str(form.get("older_than_seconds", "0")) or 0)
        except ValueError as error:
            raise Refusal(400, f"{error}; older_than_seconds is a whole number of seconds") from None
        if state not in presentation.FINISHED or not 0 <= older <= 10 * 365 * 86400:
            raise Refusal(
                400, "clean a finished state (completed, failed, cancelled, dead_lettered), age ≥ 0"
            )
        response = await self._backend.call(
            operator,
            self._backend.jobs.CleanQueue,
            jobs_pb2.CleanQueueRequest(name=name, state=value, older_than_seconds=older),
        )
        return _back(request, f"removed {response.removed} {state} jobs from {name}")

    async def retry_failed(self, request: web.Request, operator: Operator) -> web.StreamResponse:
        name = request.match_info["name"]
        done = await self._apply_filter("retry", name, "failed", operator)
        return _back(request, f"retried {done} failed jobs of {name}")

    async def promote_delayed(self, request: web.Request, operator: Operator) -> web.StreamResponse:
        name = request.match_info["name"]
        done = await self._apply_filter("promote", name, "delayed", operator)
        return _back(request, f"promoted {done} delayed jobs of {name}")

    async def retry(self, request: web.Request, operator: Operator) -> web.StreamResponse:
        return await self._one(request, operator, "retry")

    async def cancel(self, request: web.Request, operator: Operator) -> web.StreamResponse:
        return await self._one(request, operator, "cancel")

    async def promote(self, request: web.Request, operator: Operator) -> web.StreamResponse:
        return await self._one(request, operator, "promote")

    async def remove(self, request: web.Request, operator: Operator) -> web.StreamResponse:
        job_id = request.match_info["id"]
        await self._backend.call(operator, self._backend.jobs.RemoveJob, jobs_pb2.RemoveJobRequest(id=job_id))
        return web.HTTPSeeOther(f"{PREFIX}/?" + urlencode({"notice": f"job {job_id} removed"}))

    async def duplicate(self, request: web.Request, operator: Operator) -> web.StreamResponse:
        job_id = request.match_info["id"]
        copy = await self._backend.call(
            operator, self._backend.jobs.DuplicateJob, jobs_pb2.DuplicateJobRequest(id=job_id)
        )
        return web.HTTPSeeOther(
            f"{PREFIX}/jobs/{copy.id}?" + urlencode({"notice": f"job {copy.id}: a duplicate of {job_id}"})
        )

    async def _one(self, request: web.Request, operator: Operator, action: str) -> web.StreamResponse:
        job_id = request.match_info["id"]
        method, request_type = _SINGLE[action]
        job = await self._backend.call(operator, getattr(self._backend.jobs, method), request_type(id=job_id))
        return _back(request, f"job {job_id}: {action} done, now {presentation.state_name(job.state)}")

    async def bulk(self, request: web.Request, operator: Operator) -> web.StreamResponse | Page:
        """A bulk action on the selected jobs or on every job matching a filter: first a page with the
        count and a confirmation, then (`confirm=yes`) the action, answered with how many it touched."""
        form = await request.post()
        action = str(form.get("action", ""))
        if action not in _BULK_ACTIONS:
            raise Refusal(400, f"unknown bulk action {action!r}; use one of: {', '.join(_BULK_ACTIONS)}")
        selected = [str(v)[:256] for v in form.getall("id", [])][: MAX_SELECTED + 1]
        if len(selected) > MAX_SELECTED:
            raise Refusal(400, f"select at most {MAX_SELECTED} jobs, or apply the action to a filter")
        try:
            where = JobFilter.from_query({k: str(v) for k, v in form.items() if k != "id"})
        except ValueError as error:
            raise Refusal(400, str(error)) from None
        if not selected and not where.fields():
            raise Refusal(400, "select jobs or give a search to apply the action to")
        ids = selected or await self._ids(operator, where)
        if form.get("confirm") != "yes":
            count = await self._apply(action, ids, operator, dry_run=True)
            return Page(
                "confirm.html",
                {"action": action, "count": count, "matched": len(ids), "selected": selected, "where": where,
                 "limit": self._settings.max_bulk_jobs},
            )  # fmt: skip
        done = await self._apply(action, ids, operator)
        return web.HTTPSeeOther(
            f"{PREFIX}/search?"
            + urlencode({**where.fields(), "notice": f"{action}: {done} of {len(ids)} jobs"})
        )

    async def _ids(self, operator: Operator, where: JobFilter) -> list[str]:
        jobs, _ = await find(
            self._backend, operator, where, limit=self._settings.max_bulk_jobs,
        )  # fmt: skip
        return [job.id for job in jobs]

    async def _apply(self, action: str, ids: list[str], operator: Operator, *, dry_run: bool = False) -> int:
        """Runs `action` on the jobs through BulkJobAction, a chunk of ids a call; → how many it changed
        (or, dry, would change): a job in a state the action does not apply to is skipped."""
        done = 0
        for start in range(0, len(ids), _BULK_IDS_PER_CALL):
            chunk = ids[start : start + _BULK_IDS_PER_CALL]
            request = jobs_pb2.BulkJobActionRequest(action=_BULK_ENUM[action], ids=chunk, dry_run=dry_run)
            done += (await self._backend.bulk(operator, request)).affected
        return done

    async def _apply_filter(self, action: str, queue: str, state: str, operator: Operator) -> int:
        """`action` on every job of `queue` in `state`: BulkJobAction by filter, called again while it
        says more remain, a few calls at most (each call is bounded by the jobs service)."""
        where = jobs_pb2.JobFilter(queue=queue, states=[presentation.state_value(state)])
        done = 0
        for _ in range(max(self._settings.max_bulk_jobs // _BULK_IDS_PER_CALL, 1) + 1):
            request = jobs_pb2.BulkJobActionRequest(action=_BULK_ENUM[action], filter=where)
            response = await self._backend.bulk(operator, request)
            done += response.affected
            if not response.more_remain or not response.affected:
                break
        return done

    async def _day_charts(self, operator: Operator, queue: str) -> list[Any]:
        """The queue's last 24 h per minute: completed and failed, wait and run time p50/p95."""
        minutes = await self._backend.metrics(operator, queue, minutes=24 * 60)
        return [
            charts.bars({"completed": [m.completed for m in minutes], "failed": [m.failed for m in minutes]},
                        title=f"{queue}: completed and failed per minute, last 24 h"),
            charts.bars({"p50": [m.wait_p50_ms for m in minutes], "p95": [m.wait_p95_ms for m in minutes]},
                        title=f"{queue}: enqueue to start, per minute", unit=" ms"),
            charts.bars({"p50": [m.run_p50_ms for m in minutes], "p95": [m.run_p95_ms for m in minutes]},
                        title=f"{queue}: run time, per minute", unit=" ms"),
        ]  # fmt: skip

    async def _last_hour(self, operator: Operator, queues: list[jobs_pb2.Queue]) -> Any:
        """Completed and failed jobs per minute over the last hour, every queue together, from the queues'
        metrics history."""
        series = {"completed": [0.0] * 60, "failed": [0.0] * 60}
        for queue in queues:
            minutes = await self._backend.metrics(operator, queue.name, minutes=60)
            for index, minute in enumerate(minutes[-60:]):
                offset = 60 - len(minutes[-60:]) + index
                series["completed"][offset] += minute.completed
                series["failed"][offset] += minute.failed
        return _hour_summary(series)


_NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
             "Content-Security-Policy": "default-src 'self'; style-src 'self'; img-src 'self' data:; "
             "frame-ancestors 'none'; form-action 'self'"}  # fmt: skip


def _hour_summary(series: dict[str, list[float]]) -> dict[str, Any]:
    completed, failed = sum(series["completed"]), sum(series["failed"])
    return {
        "chart": charts.bars(series, title="Completed and failed jobs per minute, last hour"),
        "completed": int(completed),
        "failed": int(failed),
        "failure_rate": f"{100 * failed / (completed + failed):.1f}%" if completed + failed else "—",
    }


def _capacity(workers: list[jobs_pb2.Worker]) -> int:
    return sum(worker.capacity for worker in workers)


def _form_int(form: Mapping[str, object], field: str, low: int, high: int) -> int:
    """A whole number from the form, in [low, high], or a 400 saying what to send."""
    text = str(form.get(field, "")).strip()
    if not text.isdigit() or not low <= int(text) <= high:
        raise Refusal(400, f"{field}: give a whole number from {low} to {high}")
    return int(text)


def _back(request: web.Request, notice: str) -> web.HTTPSeeOther:
    """Back to the page the form was on (its path only: never another site), saying what happened."""
    referer = request.headers.get("referer", "")
    path = referer.split(request.host, 1)[-1].split("?", 1)[0] if request.host in referer else ""
    if not path.startswith(PREFIX + "/"):
        path = PREFIX + "/"
    return web.HTTPSeeOther(f"{path}?{urlencode({'notice': notice})}")


def _notice_of(answer: object) -> str:
    if isinstance(answer, web.HTTPSeeOther):
        return str(answer.location).split("notice=", 1)[-1][:300]
    return "asked for confirmation"


async def _to_dashboard(request: web.Request) -> web.StreamResponse:
    raise web.HTTPMovedPermanently(PREFIX + "/")
