"""The BigQuery client: the official blocking client, called only from a bounded thread pool.

Every API call carries an explicit retry deadline and a per-request timeout (the client's own defaults
retry for 10 to 40 minutes against a dead endpoint). Real BigQuery and the emulator go through this same
code; only the endpoint and the credentials differ (`BigQueryBackendSettings`).
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from google.api_core import exceptions as google_errors
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery
from google.cloud.bigquery.retry import DEFAULT_RETRY

from services.runtime.errors import FailedPreconditionError
from services.warehouse.settings import BackendKind, BigQueryBackendSettings

T = TypeVar("T")

JOB_ID_PREFIX = "switchboard_"
MAX_LABEL_LENGTH = 63
_LABEL_INVALID = re.compile(r"[^a-z0-9_\-]")


def label_value(text: str) -> str:
    """`text` as a BigQuery label value: at most 63 of lowercase letters, digits, `_` and `-`."""
    return _LABEL_INVALID.sub("_", text.lower())[:MAX_LABEL_LENGTH]


def job_labels(*, principal: str, job_id: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The labels every BigQuery job carries, so its cost is traced to a caller and a Switchboard job."""
    labels = {label_value(key)[:MAX_LABEL_LENGTH]: label_value(value) for key, value in (extra or {}).items()}
    labels["switchboard_principal"] = label_value(principal)
    labels["switchboard_job"] = label_value(job_id)
    return labels


@dataclass(frozen=True)
class QueryRequest:
    """One query as BigQuery runs it."""

    sql: str
    parameters: Sequence[bigquery.ScalarQueryParameter | bigquery.ArrayQueryParameter] = ()
    labels: Mapping[str, str] | None = None
    maximum_bytes_billed: int | None = None
    dry_run: bool = False


@dataclass(frozen=True)
class JobRef:
    """Where a BigQuery job is found again."""

    job_id: str
    location: str | None


@dataclass(frozen=True)
class DryRunResult:
    schema: list[bigquery.SchemaField]
    total_bytes_processed: int


@dataclass(frozen=True)
class RowsPage:
    schema: list[bigquery.SchemaField]
    rows: list[dict[str, Any]]
    """Each row as BigQuery's client typed it (datetime, int, dict for RECORD, list for REPEATED)."""
    total_rows: int
    next_page_token: str | None


class BigQueryBackend:
    """The client, its thread pool and the deadlines. `close()` stops the pool."""

    def __init__(self, settings: BigQueryBackendSettings) -> None:
        self.settings = settings
        self._pool = ThreadPoolExecutor(settings.bigquery_threads, thread_name_prefix="bigquery")
        self._client: bigquery.Client | None = None
        self._retry = DEFAULT_RETRY.with_deadline(settings.bigquery_api_deadline_seconds)
        self._timeout = settings.bigquery_api_timeout_seconds

    @property
    def configured(self) -> bool:
        return self.settings.kind is not BackendKind.NOT_CONFIGURED

    @property
    def api_deadline_seconds(self) -> float:
        return self.settings.bigquery_api_deadline_seconds

    @property
    def retry(self) -> Any:
        """The retry policy (with its deadline) every call passes: for callers of `call`."""
        return self._retry

    @property
    def timeout(self) -> float:
        """The per-request timeout every call passes: for callers of `call`."""
        return self._timeout

    def _make_client(self) -> bigquery.Client:
        settings = self.settings
        if settings.kind is BackendKind.NOT_CONFIGURED:
            raise FailedPreconditionError(
                "BigQuery is not configured: set GOOGLE_CLOUD_PROJECT (real BigQuery, with Application "
                "Default Credentials) or BIGQUERY_EMULATOR_HOST (the emulator)"
            )
        default_job_config = None
        if settings.bigquery_default_dataset:
            default_job_config = bigquery.QueryJobConfig(
                default_dataset=f"{settings.project}.{settings.bigquery_default_dataset}"
            )
        if settings.kind is BackendKind.EMULATOR:
            return bigquery.Client(
                project=settings.project,
                credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
                location=settings.bigquery_location,
                default_query_job_config=default_job_config,
                client_options=ClientOptions(api_endpoint=settings.bigquery_emulator_host),
            )
        # Application Default Credentials: the workload identity in a cluster, gcloud's locally.
        return bigquery.Client(
            project=settings.project,
            location=settings.bigquery_location,
            default_query_job_config=default_job_config,
        )

    def _client_now(self) -> bigquery.Client:
        if self._client is None:
            self._client = self._make_client()
        return self._client

    async def call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Runs a blocking `function(client, *args, **kwargs)` in the pool."""
        loop = asyncio.get_running_loop()
        bound = functools.partial(self._with_client, function, *args, **kwargs)
        return await loop.run_in_executor(self._pool, bound)

    def _with_client(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return function(self._client_now(), *args, **kwargs)

    # The blocking calls, each with its retry deadline and timeout.

    def _job_config(self, request: QueryRequest) -> bigquery.QueryJobConfig:
        return bigquery.QueryJobConfig(
            query_parameters=list(request.parameters),
            labels=dict(request.labels or {}),
            maximum_bytes_billed=request.maximum_bytes_billed
            or self.settings.bigquery_default_max_bytes_billed,
            dry_run=request.dry_run,
            use_query_cache=not request.dry_run,
        )

    def _start(self, client: bigquery.Client, request: QueryRequest) -> bigquery.QueryJob:
        return client.query(
            request.sql,
            job_config=self._job_config(request),
            job_id_prefix=JOB_ID_PREFIX,
            retry=self._retry,
            timeout=self._timeout,
            job_retry=None,  # a failed query is the queue's to retry, with its backoff
        )

    async def start_query(self, request: QueryRequest) -> bigquery.QueryJob:
        """Starts a query job (BigQuery's insert call); it runs on in BigQuery."""
        return await self.call(self._start, request)

    async def dry_run(self, request: QueryRequest) -> DryRunResult:
        job = await self.start_query(
            QueryRequest(
                sql=request.sql,
                parameters=request.parameters,
                labels=request.labels,
                maximum_bytes_billed=request.maximum_bytes_billed,
                dry_run=True,
            )
        )
        return DryRunResult(list(job.schema or []), int(job.total_bytes_processed or 0))

    def _wait(self, client: bigquery.Client, ref: JobRef, wait_seconds: float) -> bigquery.QueryJob:
        job = client.get_job(ref.job_id, location=ref.location, retry=self._retry, timeout=self._timeout)
        assert isinstance(job, bigquery.QueryJob)
        # result() polls until done or `timeout`; max_results=0 fetches no rows, only completion.
        job.result(max_results=0, retry=self._retry, timeout=wait_seconds, job_retry=None)
        return job

    async def wait_done(self, ref: JobRef, wait_seconds: float) -> bigquery.QueryJob:
        """Waits up to `wait_seconds` for the job to finish; raises BigQuery's error if it failed."""
        return await self.call(self._wait, ref, wait_seconds)

    def _get(self, client: bigquery.Client, ref: JobRef) -> bigquery.QueryJob:
        job = client.get_job(ref.job_id, location=ref.location, retry=self._retry, timeout=self._timeout)
        assert isinstance(job, bigquery.QueryJob)
        return job

    async def get_job(self, ref: JobRef) -> bigquery.QueryJob:
        return await self.call(self._get, ref)

    def _cancel(self, client: bigquery.Client, ref: JobRef) -> None:
        client.cancel_job(ref.job_id, location=ref.location, retry=self._retry, timeout=self._timeout)

    async def cancel(self, ref: JobRef) -> None:
        """Asks BigQuery to cancel the job; a job already finished or gone is left as it is."""
        try:
            await self.call(self._cancel, ref)
        except google_errors.NotFound:
            return

    def _page(self, client: bigquery.Client, ref: JobRef, page_size: int, page_token: str | None) -> RowsPage:
        location = ref.location or self._get(client, ref).location
        project = client.project
        # The result's schema and size (a getQueryResults call without rows); the emulator keeps no
        # schema on the job itself.
        summary = client._get_query_results(
            ref.job_id, self._retry, project=project, location=location, timeout=self._timeout
        )
        schema = list(summary.schema or [])
        # jobs.getQueryResults, page by page from the job's result: the same call on BigQuery and the
        # emulator. The client has no public form of it that takes a page token (list_rows reads a
        # table, which the emulator does not keep for a query's result); google-cloud-bigquery is pinned.
        iterator = client._list_rows_from_query_results(
            ref.job_id,
            location,
            project,
            schema,
            total_rows=summary.total_rows,
            page_size=page_size,
            retry=self._retry,
            timeout=self._timeout,
        )
        iterator.next_page_token = page_token
        page = next(iterator.pages, None)
        rows = [dict(row.items()) for row in page] if page is not None else []
        return RowsPage(
            schema=schema,
            rows=rows,
            total_rows=int(iterator.total_rows or 0),
            next_page_token=iterator.next_page_token,
        )

    async def rows_page(self, ref: JobRef, *, page_size: int, page_token: str | None) -> RowsPage:
        """One page of a finished query's result table, read from BigQuery (never the whole result)."""
        return await self.call(self._page, ref, page_size, page_token)

    def _select_one(self, client: bigquery.Client) -> None:
        job = self._start(client, QueryRequest(sql="SELECT 1", maximum_bytes_billed=None))
        job.result(retry=self._retry, timeout=self._timeout, job_retry=None)

    async def select_one(self) -> None:
        """Runs `SELECT 1`: the backend answers queries."""
        await self.call(self._select_one)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._client is not None:
            self._client.close()  # type: ignore[no-untyped-call]
