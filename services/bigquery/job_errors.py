"""BigQuery's errors as job errors: the caller's mistakes fail the job for good, the service's are retried.

`invalidQuery` (with BigQuery's position in its message), `notFound` and `accessDenied` fail the job at
once with BigQuery's message and location; `backendError`, `rateLimitExceeded`, other 5xx answers,
connection errors and deadlines are retryable, with the queue's backoff. Each error type is named for what
happened, which is what a job's error `type` shows.
"""

from __future__ import annotations

import concurrent.futures

import requests
from google.api_core import exceptions as google_errors

from services.runtime.errors import JobError, NonRetryableError, RetryableError

_TRANSIENT_REASONS = {
    "backendError",
    "rateLimitExceeded",
    "internalError",
    "jobBackendError",
    "quotaExceeded",
}
MAX_MESSAGE_CHARS = 2_000


class BigQueryInvalidQuery(NonRetryableError):
    reason = "BIGQUERY_INVALID_QUERY"


class BigQueryNotFound(NonRetryableError):
    reason = "BIGQUERY_NOT_FOUND"


class BigQueryAccessDenied(NonRetryableError):
    reason = "BIGQUERY_ACCESS_DENIED"


class BigQueryRejected(NonRetryableError):
    """Any other refusal of the query itself (a bytes cap exceeded, a bad request)."""

    reason = "BIGQUERY_REJECTED"


class BigQueryUnavailable(RetryableError):
    """BigQuery failed or could not be reached; a later attempt may succeed."""

    reason = "BIGQUERY_UNAVAILABLE"


_BY_REASON: dict[str, type[NonRetryableError]] = {
    "invalidQuery": BigQueryInvalidQuery,
    "notFound": BigQueryNotFound,
    "accessDenied": BigQueryAccessDenied,
}


def _first_error(error: google_errors.GoogleAPICallError) -> dict[str, str]:
    errors = getattr(error, "errors", None) or []
    first = errors[0] if errors and isinstance(errors[0], dict) else {}
    return {key: str(value) for key, value in first.items()}


def _describe(message: str, *, reason: str, location: str, bigquery_job_id: str | None) -> str:
    parts = [f"reason {reason}"]
    if location:
        parts.append(f"location {location}")
    if bigquery_job_id:
        parts.append(f"BigQuery job {bigquery_job_id}")
    return f"{message} ({', '.join(parts)})"[:MAX_MESSAGE_CHARS]


def to_job_error(error: BaseException, *, bigquery_job_id: str | None = None) -> JobError:  # noqa: PLR0911
    """The job error for `error` raised by the BigQuery client (or BaseException it wrapped)."""
    if isinstance(error, google_errors.RetryError):
        cause = error.cause
        return BigQueryUnavailable(f"BigQuery did not answer in time: {cause or error}"[:MAX_MESSAGE_CHARS])
    if isinstance(error, google_errors.GoogleAPICallError):
        first = _first_error(error)
        reason = first.get("reason", "")
        message = first.get("message") or error.message or str(error)
        location = first.get("location", "")
        text = _describe(message, reason=reason or type(error).__name__, location=location,
                         bigquery_job_id=bigquery_job_id)  # fmt: skip
        code = error.code or 0
        if reason in _BY_REASON:
            return _BY_REASON[reason](text, metadata={"reason": reason, "location": location})
        if reason in _TRANSIENT_REASONS or int(code) >= 500 or int(code) == 429:
            return BigQueryUnavailable(text, metadata={"reason": reason, "location": location})
        if isinstance(error, google_errors.NotFound):
            return BigQueryNotFound(text, metadata={"reason": "notFound", "location": location})
        if isinstance(error, google_errors.Forbidden):
            return BigQueryAccessDenied(text, metadata={"reason": "accessDenied", "location": location})
        return BigQueryRejected(text, metadata={"reason": reason, "location": location})
    if isinstance(error, requests.exceptions.RequestException | ConnectionError | OSError):
        return BigQueryUnavailable(f"BigQuery could not be reached: {error}"[:MAX_MESSAGE_CHARS])
    if isinstance(error, concurrent.futures.TimeoutError | TimeoutError):
        return BigQueryUnavailable(f"BigQuery did not answer in time: {error}"[:MAX_MESSAGE_CHARS])
    raise error
