"""BigQueryService's logic: submit a validated query as a job (or dry-run it), page its results out of
BigQuery, cancel it. No grpc here: the servicer translates, the jobs API adapter talks to the jobs service.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from google.api_core import exceptions as google_errors
from google.cloud.bigquery import SchemaField
from redis.asyncio import Redis

from services.access.audit import AuditEntry, AuditLog, Outcome
from services.access.context import current_principal
from services.access.principal import Principal, PrincipalKind
from services.access.scopes import Scope
from services.bigquery import completion, page_token, parameters, payload_seal, sql_guard
from services.bigquery.jobs_api import QueryJob, QueryState
from services.bigquery.row_json import row_to_json
from services.runtime.errors import (
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    UnavailableError,
)
from services.warehouse.backend import BigQueryBackend, JobRef, QueryRequest, job_labels

logger = logging.getLogger(__name__)

MAX_LABELS = 16
_LABEL_KEY = re.compile(r"[a-z][a-z0-9_\-]{0,62}")
_LABEL_VALUE = re.compile(r"[a-z0-9_\-]{0,63}")
DEFAULT_PAGE_SIZE = 1_000
MAX_PAGE_SIZE = 10_000
SUBMIT_OPERATION = "/switchboard.bigquery.v1.BigQueryService/SubmitQuery"


class QueryJobs(Protocol):
    async def submit(self, job_id: str, payload: Mapping[str, Any]) -> None: ...
    async def get(self, job_id: str) -> QueryJob: ...
    async def cancel(self, job_id: str) -> QueryJob: ...


@dataclass(frozen=True)
class Submission:
    sql: str
    parameters: Sequence[parameters.QueryParameterInput] = ()
    dry_run: bool = False
    max_bytes_billed: int = 0
    labels: Mapping[str, str] = field(default_factory=dict)
    allow_writes: bool = False


@dataclass(frozen=True)
class Submitted:
    job_id: str = ""
    schema: Sequence[SchemaField] = ()
    total_bytes_processed: int = 0


@dataclass(frozen=True)
class QueryFailure:
    reason: str
    message: str
    location: str = ""


@dataclass(frozen=True)
class ResultsPage:
    state: QueryState
    schema: Sequence[SchemaField] = ()
    rows: Sequence[dict[str, Any]] = ()
    total_rows: int = 0
    next_page_token: str = ""
    error: QueryFailure | None = None


class Queries:
    def __init__(
        self,
        backend: BigQueryBackend,
        jobs: QueryJobs,
        *,
        redis: Redis | None,
        audit: AuditLog | None,
        allowed_datasets: Callable[[], Sequence[str]],
        service_key: str | None = None,
    ) -> None:
        self._service_key = service_key
        self._backend = backend
        self._jobs = jobs
        self._redis = redis
        self._audit = audit
        self._allowed_datasets = allowed_datasets

    def sealed(self, payload: Mapping[str, Any], job_id: str) -> dict[str, Any]:
        """A `bigquery.query` payload this service validated for the job `job_id`, sealed so the task runs
        it as validated (and only as that job)."""
        return payload_seal.sealed(payload, self._service_key, job_id)

    def bytes_cap(self, requested: int) -> int:
        """The request's cap (0: the configured default); above the configured maximum → 400."""
        settings = self._backend.settings
        if requested < 0 or requested > settings.bigquery_max_bytes_billed:
            raise InvalidArgumentError.for_field(
                "max_bytes_billed",
                f"{requested:,} is out of range: give 1-{settings.bigquery_max_bytes_billed:,} bytes, "
                f"or 0 for the default ({settings.bigquery_default_max_bytes_billed:,})",
            )
        return requested or settings.bigquery_default_max_bytes_billed

    async def submit(self, submission: Submission, *, principal: Principal, source: str) -> Submitted:
        if submission.allow_writes and not principal.has(Scope.ADMIN):
            raise PermissionDeniedError(
                "allow_writes needs the admin's credentials or an admin-scoped key; "
                "send the query without allow_writes to run a read query"
            )
        labels = _labels(submission.labels)
        cap = self.bytes_cap(submission.max_bytes_billed)
        settings = self._backend.settings
        inspection = sql_guard.inspect(
            submission.sql,
            default_dataset=settings.bigquery_default_dataset,
            allowed_datasets=tuple(self._allowed_datasets()),
            allow_writes=submission.allow_writes,
            project=settings.project,
        )
        checked = parameters.from_wire(list(submission.parameters))
        if not self._backend.configured:
            raise FailedPreconditionError(
                "BigQuery is not configured: set GOOGLE_CLOUD_PROJECT (real BigQuery) or "
                "BIGQUERY_EMULATOR_HOST (the emulator)"
            )
        if submission.dry_run:
            return await self._dry_run(submission.sql, checked, cap, labels, principal)
        job_id = f"query-{uuid.uuid4().hex}"
        payload = {
            "sql": submission.sql,
            "parameters": [{"name": p.name, "type": p.type, "value": p.value} for p in submission.parameters],
            "max_bytes_billed": cap,
            "labels": labels,
            "principal": principal.label,
        }
        await self._jobs.submit(job_id, self.sealed(payload, job_id))
        if submission.allow_writes and self._audit is not None:
            await self._record_write(job_id, inspection, principal, source)
        return Submitted(job_id=job_id)

    async def _dry_run(
        self,
        sql: str,
        checked: list[parameters.Parameter],
        cap: int,
        labels: Mapping[str, str],
        principal: Principal,
    ) -> Submitted:
        request = QueryRequest(
            sql=sql,
            parameters=parameters.to_bigquery(checked),
            labels=job_labels(principal=principal.label, job_id="dry-run", extra=labels),
            maximum_bytes_billed=cap,
        )
        try:
            result = await self._backend.dry_run(request)
        except google_errors.BadRequest as error:
            raise InvalidArgumentError.for_field(
                "sql", f"BigQuery refused the query: {error.message}"
            ) from None
        except google_errors.NotFound as error:
            raise InvalidArgumentError.for_field("sql", f"BigQuery: {error.message}") from None
        except Exception as error:
            raise UnavailableError(f"BigQuery did not answer the dry run: {_short(error)}") from None
        return Submitted(schema=result.schema, total_bytes_processed=result.total_bytes_processed)

    async def _record_write(
        self, job_id: str, inspection: sql_guard.Inspection, principal: Principal, source: str
    ) -> None:
        assert self._audit is not None
        entry = AuditEntry(
            time_ms=int(time.time() * 1000),
            principal=principal.label,
            operation=SUBMIT_OPERATION,
            target=job_id,
            outcome=Outcome.ALLOWED,
            source=source,
            detail=f"allow_writes: {inspection.statement_kind} on {', '.join(sorted(inspection.datasets))}",
        )
        try:
            await self._audit.record(entry)
        except Exception:  # the query is already queued; a lost audit line is logged, not hidden
            logger.warning("audit entry not written", exc_info=True, extra={"job_id": job_id})

    async def results(self, job_id: str, *, page_size: int, token: str) -> ResultsPage:
        if page_size < 0 or page_size > MAX_PAGE_SIZE:
            raise InvalidArgumentError.for_field(
                "page_size", f"{page_size:,} is out of range: give 1-{MAX_PAGE_SIZE:,}, or 0 for the default"
            )
        bigquery_token = page_token.decode(token)
        job = await self._jobs.get(job_id)
        _check_owner(job, cancelling=False)
        if job.state is not QueryState.DONE:
            return ResultsPage(state=job.state, error=_failure(job))
        ref = _ref(job)
        if ref is None:
            raise FailedPreconditionError(f"query job {job_id} recorded no BigQuery job")
        try:
            page = await self._backend.rows_page(
                ref, page_size=page_size or DEFAULT_PAGE_SIZE, page_token=bigquery_token
            )
        except google_errors.BadRequest as error:
            raise InvalidArgumentError.for_field(
                "page_token", f"BigQuery refused it: {error.message}"
            ) from None
        except google_errors.NotFound:
            raise FailedPreconditionError(
                f"the result of query job {job_id} is gone from BigQuery (results expire); "
                "run the query again"
            ) from None
        except Exception as error:
            raise UnavailableError(f"BigQuery did not answer: {_short(error)}") from None
        return ResultsPage(
            state=job.state,
            schema=page.schema,
            rows=[row_to_json(row, page.schema) for row in page.rows],
            total_rows=page.total_rows,
            next_page_token=page_token.encode(page.next_page_token),
        )

    async def cancel(self, job_id: str) -> QueryState:
        _check_owner(await self._jobs.get(job_id), cancelling=True)
        job = await self._jobs.cancel(job_id)
        ref = _ref(job)
        if ref is not None and job.state in (QueryState.RUNNING, QueryState.CANCELLED):
            try:
                await self._backend.cancel(ref)
            except Exception as error:  # our job is cancelled; BigQuery's is capped in bytes and time
                logger.warning("could not cancel BigQuery job %s: %s", ref.job_id, _short(error))
        if job.state is QueryState.CANCELLED and self._redis is not None:
            try:
                await self._redis.publish(completion.channel_for(job_id), job_id)
            except Exception as error:  # a lost notice costs waiters their wait, nothing more
                logger.warning("could not announce the cancellation of %s: %s", job_id, _short(error))
        return job.state


def _ref(job: QueryJob) -> JobRef | None:
    bigquery_job_id = job.progress.get("bigquery_job_id")
    if not isinstance(bigquery_job_id, str) or not bigquery_job_id:
        return None
    location = job.progress.get("location")
    return JobRef(bigquery_job_id, location if isinstance(location, str) else None)


def _failure(job: QueryJob) -> QueryFailure | None:
    if job.state not in (QueryState.FAILED, QueryState.CANCELLED):
        return None
    recorded = job.progress.get("error")
    if isinstance(recorded, dict):
        return QueryFailure(
            reason=str(recorded.get("reason", "")),
            message=str(recorded.get("message", "")),
            location=str(recorded.get("location", "")),
        )
    reason = job.error_type or job.state.value
    return QueryFailure(
        reason=reason, message=job.error_message or f"the query's job ended {job.state.value}"
    )


def _labels(given: Mapping[str, str]) -> dict[str, str]:
    if len(given) > MAX_LABELS:
        raise InvalidArgumentError.for_field("labels", f"{len(given)} given; at most {MAX_LABELS}")
    for key, value in given.items():
        if not _LABEL_KEY.fullmatch(key) or not _LABEL_VALUE.fullmatch(value):
            raise InvalidArgumentError.for_field(
                "labels",
                f"label {key[:70]!r}: BigQuery's rules are keys of 1-63 lowercase letters, digits, _ and -, "
                "starting with a letter, and values of at most 63 of the same",
            )
        if key.startswith("switchboard_"):
            raise InvalidArgumentError.for_field(
                "labels", f"label {key!r}: switchboard_* labels are set by us"
            )
    return dict(given)


def _short(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:300]


_KEY_PREFIX = f"{PrincipalKind.API_KEY}:"


def _check_owner(job: QueryJob, *, cancelling: bool) -> None:
    """A key's query is that key's (and an admin's): its results and its cancelling. RunQuery's jobs are
    shared by every identical query (single flight), so their results are anyone's with the scope;
    cancelling one stays its submitter's, as it would stop the others' too. A query of the admin or of
    nobody (keys not required) stays open, as that API is. Someone else's job is "not found", so its
    existence is not told either."""
    caller = current_principal()
    if caller.has(Scope.ADMIN) or not job.principal.startswith(_KEY_PREFIX):
        return
    if job.principal == caller.label or (job.shared and not cancelling):
        return
    raise NotFoundError(f"no query job {job.job_id!r} of yours; give the job_id SubmitQuery returned")
