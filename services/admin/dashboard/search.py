"""The search box: a job by exact id, else jobs whose id, task, payload or error holds the text, within a
state and a time range, newest first.

It asks the jobs service: an exact id through GetJobStatus, the rest through SearchJobs (its index of
task names and payload and error words), one query per kind of match, merged newest first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from services.admin.dashboard.access import Operator
from services.admin.dashboard.backend import Backend, BackendError
from services.admin.dashboard.presentation import state_value
from switchboard.jobs.v1 import jobs_pb2

MAX_QUERY = 200
# SearchJobs pages read per kind of match (a page may come back short: its scan budget ran out).
_MAX_PAGES = 20


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


async def find(
    backend: Backend, operator: Operator, where: JobFilter, *, limit: int
) -> tuple[list[jobs_pb2.Job], bool]:
    """→ (jobs matching `where`, newest first, at most `limit`; whether more may match than returned)."""
    exact = await _exact(backend, operator, where)
    return await _indexed(backend, operator, where, limit=limit, exact=exact)


async def _exact(backend: Backend, operator: Operator, where: JobFilter) -> jobs_pb2.Job | None:
    if not where.text or " " in where.text:
        return None
    try:
        job = await backend.job(operator, where.text)
    except BackendError as error:
        if error.status in (400, 404):
            return None
        raise
    if (where.queue and job.queue != where.queue) or (where.state and state_value(where.state) != job.state):
        return None
    return job


async def _indexed(
    backend: Backend, operator: Operator, where: JobFilter, *, limit: int, exact: jobs_pb2.Job | None
) -> tuple[list[jobs_pb2.Job], bool]:
    base = jobs_pb2.JobFilter(queue=where.queue)
    if where.state:
        base.states.append(state_value(where.state))
    since, until = where.bounds()
    if since is not None:
        base.created_after.FromNanoseconds(int(since * 1e9))
    if until is not None:
        base.created_before.FromNanoseconds(int(until * 1e9))
    queries = [base]
    if where.text:
        words = " ".join(where.text.split()[:8])
        queries = []
        for field, value in (("task", where.text), ("payload_text", words), ("error_text", words)):
            if field == "task" and " " in where.text:
                continue
            query = jobs_pb2.JobFilter()
            query.CopyFrom(base)
            setattr(query, field, value)
            queries.append(query)
    found = {exact.id: exact} if exact is not None else {}
    more = False
    for query in queries:
        token, taken = "", 0
        for _ in range(_MAX_PAGES):  # pages of this kind of match, up to `limit` jobs
            try:
                response = await backend.search(operator, query, page_size=min(limit, 500), page_token=token)
            except BackendError as error:
                if error.status == 400:  # not a valid value for this kind of match (e.g. a task name)
                    break
                raise
            found.update((job.id, job) for job in response.jobs)
            taken += len(response.jobs)
            token = response.next_page_token
            if not token or taken >= limit:
                break
        more = more or bool(token)
    ordered = sorted(
        found.values(), key=lambda job: (job.created_at.seconds, job.created_at.nanos), reverse=True
    )
    return ordered[:limit], more or len(ordered) > limit


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
