"""The domain error hierarchy every service raises; `services.runtime.status` maps it to gRPC status.

Domain code raises these and never imports grpc. Each error says what went wrong and what to do; the
optional fields feed the structured `google.rpc` details a client can act on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class FieldViolation:
    """One bad request field and what is wrong with it."""

    field: str
    description: str


class SwitchboardError(Exception):
    """Base of every error a Switchboard service raises on purpose.

    `reason` is a stable UPPER_SNAKE identifier for machines; the message is for people.
    """

    reason = "SWITCHBOARD_ERROR"
    retry_after_seconds: float | None = None
    """How long the caller should wait before trying again, when the error says (a RetryInfo detail and a
    `retry-after` trailer, which the gateway turns into the HTTP header)."""

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason
        self.metadata: dict[str, str] = dict(metadata or {})


class InvalidArgumentError(SwitchboardError):
    """The request is malformed or out of bounds; sending it again unchanged fails again."""

    reason = "INVALID_ARGUMENT"

    def __init__(
        self,
        message: str,
        *,
        violations: tuple[FieldViolation, ...] = (),
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, reason=reason, metadata=metadata)
        self.violations = violations

    @classmethod
    def for_field(cls, field: str, description: str) -> InvalidArgumentError:
        return cls(f"{field}: {description}", violations=(FieldViolation(field, description),))


class NotFoundError(SwitchboardError):
    """The thing the request names does not exist."""

    reason = "NOT_FOUND"


class ConflictError(SwitchboardError):
    """The request conflicts with the current state (a stale version, a duplicate)."""

    reason = "CONFLICT"


class UnauthenticatedError(SwitchboardError):
    """The call carries no credentials, or ones that are not valid (unknown, revoked, a wrong password)."""

    reason = "UNAUTHENTICATED"


class PermissionDeniedError(SwitchboardError):
    """The caller is who it says, but may not do this (a key without the scope; not an admin)."""

    reason = "PERMISSION_DENIED"


class FailedPreconditionError(SwitchboardError):
    """The thing is in a state that does not allow this (cancelling a completed job)."""

    reason = "FAILED_PRECONDITION"


class UnavailableError(SwitchboardError):
    """A dependency (Redis, a sibling service, BigQuery) cannot be reached; retrying later may work."""

    reason = "UNAVAILABLE"

    def __init__(
        self,
        message: str,
        *,
        retry_after_seconds: float | None = None,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, reason=reason, metadata=metadata)
        self.retry_after_seconds = retry_after_seconds


class ResourceExhaustedError(SwitchboardError):
    """The caller spent its allowance (a gateway rate limit); it may try again after `retry_after_seconds`."""

    reason = "RATE_LIMITED"

    def __init__(
        self,
        message: str,
        *,
        retry_after_seconds: float,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, reason=reason, metadata=metadata)
        self.retry_after_seconds = retry_after_seconds


class JobError(SwitchboardError):
    """Raised by a task to fail its job attempt; its type says whether the job may be tried again."""

    reason = "JOB_FAILED"
    retryable: bool = True


class RetryableError(JobError):
    """A transient failure: the job is tried again per its queue's backoff policy."""

    reason = "JOB_FAILED_RETRYABLE"
    retryable = True


class NonRetryableError(JobError):
    """A permanent failure: the job fails at once, whatever attempts it has left."""

    reason = "JOB_FAILED_PERMANENTLY"
    retryable = False


class RateLimitedError(JobError):
    """An upstream answered "too many requests": the job waits again (no attempt used) and its whole
    queue holds for `retry_after_seconds` (BullMQ's `RateLimitError`)."""

    reason = "JOB_RATE_LIMITED"
    retryable = True
    retry_after_seconds: float

    def __init__(self, message: str, *, retry_after_seconds: float) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds
