"""RunQuery's logic: answer from the cache, or share or start the query's job, and wait a bounded time.

A hit answers at once and starts nothing. A miss joins the query's single flight (`single_flight`): the
claimant submits the `bigquery.query` job, everyone else attaches to it. The call then waits on the job's
completion notice (`completion_watch`), never polling, up to its `wait_ms`: finished in time, it answers
the first page (and caches it); failed, the error; otherwise the job id to follow. `use_cache: false`
neither reads the cache nor joins a flight: it starts a job of its own, whose result then replaces the
cached one.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from services.bigquery.completion_watch import CompletionWatch
from services.bigquery.jobs_api import QueryState
from services.bigquery.queries import QueryFailure
from services.bigquery.result_cache import QueryIdentity, QueryResult, ResultCache
from services.bigquery.single_flight import SingleFlight

# What a waiter waits for: the job will not change any more.
ENDED = frozenset({QueryState.DONE, QueryState.FAILED, QueryState.CANCELLED})


@dataclass(frozen=True)
class JobOutcome:
    """Where a query's job is; `result` is set when DONE, `error` when FAILED or CANCELLED."""

    state: QueryState
    result: QueryResult | None = None
    error: QueryFailure | None = None


class QueryJobs(Protocol):
    """The `bigquery.query` jobs, as RunQuery uses them (the jobs API and the results reader)."""

    async def submit(self, job_id: str, payload: Mapping[str, Any]) -> None:
        """Enqueues the query as job `job_id` on the bigquery queue, as the caller."""

    async def outcome(self, job_id: str, *, page_size: int) -> JobOutcome:
        """The job's state, and once DONE its first page; a job not submitted yet is PENDING."""


@dataclass(frozen=True)
class QueryRequest:
    identity: QueryIdentity
    job_payload: Mapping[str, Any]
    """What the `bigquery.query` task is given."""
    use_cache: bool
    ttl_seconds: int
    wait_seconds: float
    page_size: int


@dataclass(frozen=True)
class QueryAnswer:
    job_id: str
    state: QueryState
    result: QueryResult | None = None
    error: QueryFailure | None = None
    cached: bool = False
    not_cached_reason: str = ""

    @property
    def complete(self) -> bool:
        return self.result is not None


class QueryRunner:
    def __init__(
        self, cache: ResultCache, flights: SingleFlight, jobs: QueryJobs, completions: CompletionWatch
    ) -> None:
        self._cache = cache
        self._flights = flights
        self._jobs = jobs
        self._completions = completions

    async def run(self, request: QueryRequest) -> QueryAnswer:
        digest = request.identity.digest()
        # A first page of another size is another answer (its page token goes on from elsewhere).
        key = self._cache.key_for(request.identity) + f":{request.page_size}"
        if request.use_cache:
            hit = await self._cache.get(key)
            if hit is not None:
                return QueryAnswer(job_id=hit.job_id, state=QueryState.DONE, result=hit, cached=True)
            flight = await self._flights.join(digest, _new_job_id())
            job_id = flight.job_id
            if flight.owner:
                # A flight ends after its result is cached: one that ended just before this claim left a
                # result to serve rather than a query to run again.
                hit = await self._cache.get(key, count=False)
                if hit is not None:
                    await self._flights.release(digest, job_id)
                    return QueryAnswer(job_id=hit.job_id, state=QueryState.DONE, result=hit, cached=True)
                await self._submit(digest, job_id, request)
        else:
            job_id = _new_job_id()
            await self._jobs.submit(job_id, request.job_payload)
        outcome = await self._wait(job_id, request, key)
        if outcome.state is QueryState.DONE and outcome.result is not None:
            stored = await self._cache.put(key, outcome.result, ttl_seconds=request.ttl_seconds)
            if request.use_cache:
                await self._flights.release(digest, job_id)
            return QueryAnswer(
                job_id=job_id,
                state=QueryState.DONE,
                result=outcome.result,
                not_cached_reason=stored.reason,
            )
        if outcome.state in ENDED and request.use_cache:
            # A failed or cancelled query is not shared with the next identical one: that one tries anew.
            await self._flights.release(digest, job_id)
        return QueryAnswer(job_id=job_id, state=outcome.state, error=outcome.error)

    async def _submit(self, digest: str, job_id: str, request: QueryRequest) -> None:
        try:
            await self._jobs.submit(job_id, request.job_payload)
        except BaseException:
            # Nobody else may wait on a job that will never exist.
            await asyncio.shield(self._flights.release(digest, job_id))
            raise

    async def _wait(self, job_id: str, request: QueryRequest, key: str) -> JobOutcome:
        deadline = time.monotonic() + request.wait_seconds
        while True:
            with self._completions.waiter(job_id) as ended:
                outcome = await self._jobs.outcome(job_id, page_size=request.page_size)
                remaining = deadline - time.monotonic()
                if outcome.state in ENDED or remaining <= 0:
                    return outcome
                try:
                    await asyncio.wait_for(asyncio.shield(ended), timeout=remaining)
                except TimeoutError:
                    return outcome
            if request.use_cache:
                # Another waiter of the same flight may have read and cached the first page already.
                hit = await self._cache.get(key, count=False)
                if hit is not None and hit.job_id == job_id:
                    return JobOutcome(state=QueryState.DONE, result=hit)


def _new_job_id() -> str:
    return f"query-{uuid.uuid4().hex}"
