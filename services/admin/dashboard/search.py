"""The search box: a job by exact id, else jobs whose id, task, payload or error holds the text, within a
state and a time range, newest first.

It asks the jobs service: an exact id through GetJobStatus, the rest through ListJobs pages, matched here
on the job's payload and error text too, over the newest `scan_limit` jobs at most (the jobs service's
own search covers only ids and task names).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from google.protobuf import json_format

from services.admin.dashboard.access import Operator
from services.admin.dashboard.backend import Backend, BackendError
from services.admin.dashboard.presentation import state_value
from switchboard.jobs.v1 import jobs_pb2

MAX_QUERY = 200
_SCAN_PAGE = 500


@dataclass(frozen=True)
class JobFilter:
    text: str = ""
    queue: str = ""
    state: str = ""
    since: str = ""
    """ISO date-time (a `datetime-local` field's value), UTC; "" for no bound."""
    until: str = ""

    @classmethod
    def from_query(cls, query: dict[str, str]) -> JobFilter:
        """From a request's query (or form) fields; a bad value → ValueError saying which."""
        found = cls(
            text=query.get("q", "").strip()[:MAX_QUERY],
            queue=query.get("queue", "")[:64],
            state=query.get("state", ""),
            since=query.get("since", "")[:32],
            until=query.get("until", "")[:32],
        )
        state_value(found.state)
        found.bounds()
        return found

    def bounds(self) -> tuple[float | None, float | None]:
        return _moment(self.since, "since"), _moment(self.until, "until")

    def fields(self) -> dict[str, str]:
        """As query fields, to link the same search or carry it in a form."""
        named = {"q": self.text, "queue": self.queue, "state": self.state, "since": self.since}
        return {key: value for key, value in {**named, "until": self.until}.items() if value}

    def matches(self, job: jobs_pb2.Job) -> bool:
        since, until = self.bounds()
        created = job.created_at.seconds + job.created_at.nanos / 1e9
        if (since is not None and created < since) or (until is not None and created > until):
            return False
        if not self.text:
            return True
        needle = self.text.lower()
        error = job.error
        haystack = (
            job.id,
            job.task,
            json.dumps(json_format.MessageToDict(job.payload), ensure_ascii=False),
            f"{error.type} {error.message}",
            *(f"{e.type} {e.message}" for e in job.attempt_errors),
        )
        return any(needle in text.lower() for text in haystack)


async def find(
    backend: Backend, operator: Operator, where: JobFilter, *, limit: int, scan_limit: int
) -> tuple[list[jobs_pb2.Job], bool]:
    """→ (jobs matching `where`, newest first, at most `limit`; whether the scan stopped before the end)."""
    found: list[jobs_pb2.Job] = []
    seen: set[str] = set()
    if where.text and " " not in where.text:
        try:
            exact = await backend.job(operator, where.text)
        except BackendError as error:
            if error.status not in (400, 404):
                raise
        else:
            if (not where.queue or exact.queue == where.queue) and (
                not where.state or state_value(where.state) == exact.state
            ):
                found.append(exact)
                seen.add(exact.id)
    token, scanned = "", 0
    while len(found) < limit:
        page, token = await backend.jobs_page(
            operator,
            queue=where.queue,
            state=state_value(where.state),
            page_size=_SCAN_PAGE,
            page_token=token,
        )
        scanned += len(page)
        for job in page:
            if job.id not in seen and where.matches(job):
                found.append(job)
                seen.add(job.id)
                if len(found) == limit:
                    return found, bool(token)
        if not token:
            return found, False
        if scanned >= scan_limit:
            return found, True
    return found, bool(token)


def _moment(text: str, name: str) -> float | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{name} must be a date and time like 2026-12-01T13:45") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
