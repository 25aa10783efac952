"""RunQuery's view of the `bigquery.query` jobs: submitted through the jobs API, sealed as SubmitQuery
seals what it validated (the task runs an unsealed job only as a read on the default dataset), their first
page read the way GetQueryResults reads any page (`Queries.results`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.bigquery.jobs_api import JobsApi, QueryState
from services.bigquery.queries import Queries
from services.bigquery.query_runner import JobOutcome
from services.bigquery.result_cache import QueryResult
from services.bigquery.row_json import schema_to_json
from services.runtime.errors import NotFoundError


class RunQueryJobs:
    def __init__(self, jobs: JobsApi, queries: Queries) -> None:
        self._jobs = jobs
        self._queries = queries

    async def submit(self, job_id: str, payload: Mapping[str, Any]) -> None:
        await self._jobs.submit(job_id, self._queries.sealed(payload, job_id))

    async def outcome(self, job_id: str, *, page_size: int) -> JobOutcome:
        try:
            page = await self._queries.results(job_id, page_size=page_size, token="")
        except NotFoundError:
            # The flight's claimant has not submitted it yet.
            return JobOutcome(state=QueryState.PENDING)
        if page.state is not QueryState.DONE:
            return JobOutcome(state=page.state, error=page.error)
        return JobOutcome(
            state=page.state,
            result=QueryResult(
                job_id=job_id,
                schema=schema_to_json(page.schema),
                rows=list(page.rows),
                total_rows=page.total_rows,
                next_page_token=page.next_page_token,
            ),
        )
