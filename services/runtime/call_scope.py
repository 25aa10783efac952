"""The scope every RPC of ours runs in: a request id per call, the caller checked, domain errors to status.

With a `Guard` (every service process has one), each call's credentials are checked against what its RPC
needs (`services.access`) before the servicer runs, the principal is bound for the servicer
(`services.access.context`), and every admin RPC's outcome, allowed, denied or failed, goes to the audit
trail. A refusal is a `SwitchboardError` like any other, so it is answered by the one mapping below.

Servicers and domain code raise `SwitchboardError`s; this is the only place they become status codes.
Redis failing a call (any `RedisError`: refused, reset, timed out, loading, read-only) and a call that runs
out of its deadline are UNAVAILABLE, with a message that says to retry: the caller can do nothing about
them but wait. An unexpected exception is logged once, with the method and request id, and answered as
INTERNAL without leaking its text.

A call of a service that needs Redis runs under a deadline (`REDIS_CALL_DEADLINE_SECONDS`): its whole
Redis time, pool wait and retries included, is bounded, so a stalled Redis costs a caller at most that
long. Such a call does nothing but Redis and a little CPU, so the deadline is put around all of it
(`services.runtime.call_deadlines`: one watchdog, not a timer per call).

The scope is put around each servicer method once, when the service is registered
(`with_call_scope`), rather than by a server interceptor: grpc.aio runs an interceptor on every call and
it must build a new method handler each time, a cost every rate-limit check would pay.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from grpc_status import rpc_status
from redis.exceptions import BusyLoadingError, ReadOnlyError, RedisError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from services.access.audit import AuditEntry, AuditLog, Outcome
from services.access.context import bind_delegated, bind_principal, reset_delegated, reset_principal
from services.access.guard import (
    API_KEY_HEADER,
    FORWARDED_FOR_HEADER,
    SERVICE_KEY_HEADER,
    Credentials,
    Guard,
    gateway_client_address,
)
from services.access.principal import Principal, PrincipalKind
from services.access.scopes import Scope
from services.runtime import audit_detail
from services.runtime.call_deadlines import CallDeadlines
from services.runtime.errors import SwitchboardError, UnavailableError
from services.runtime.request_context import (
    REQUEST_ID_HEADER,
    bind_request_id,
    new_request_id,
    reset_request_id,
)
from services.runtime.status import to_rpc_status

logger = logging.getLogger(__name__)

_UnaryBehaviour = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]

# What a caller is told to wait before trying again when Redis fails its call.
REDIS_RETRY_AFTER_SECONDS = 1.0
# Redis's replies that mean "not now" (a replica being promoted, a restart loading its data), not a bug.
_TRANSIENT_REPLIES = (BusyLoadingError, ReadOnlyError)


class _ScopedServicer:
    """Stands in for a servicer when it is registered: the same RPC methods, each inside the scope."""


def with_call_scope(
    servicer: object,
    descriptor: ServiceDescriptor,
    *,
    deadline_seconds: float | None = None,
    guard: Guard | None = None,
    audit: AuditLog | None = None,
) -> Any:
    """`servicer`'s RPCs of `descriptor`, each binding its request id and mapping what it raises; with
    `deadline_seconds`, each call that takes longer is ended as UNAVAILABLE; with `guard`, each call is
    checked first (none: open, for tests of other concerns) and admin RPCs are recorded in `audit`."""
    deadlines = CallDeadlines(deadline_seconds) if deadline_seconds is not None else None
    scoped = _ScopedServicer()
    for method in descriptor.methods:
        behaviour = getattr(servicer, method.name)
        full_name = f"/{descriptor.full_name}/{method.name}"
        if method.client_streaming or method.server_streaming:
            # None of our RPCs streams; one that does needs a scope that wraps its iterator.
            raise TypeError(f"{full_name} streams: the call scope wraps unary RPCs only")
        if guard is not None:
            audited = audit if guard.requirement(full_name) is Scope.ADMIN else None
            behaviour = _guarded(behaviour, full_name, guard, audited)
        scoped.__dict__[method.name] = _wrap_unary(behaviour, full_name, deadlines)
    return scoped


def _incoming_request_id(context: grpc.aio.ServicerContext) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == REQUEST_ID_HEADER and value:
            return str(value)[:128]
    return new_request_id()


def _wrap_unary(behaviour: _UnaryBehaviour, method: str, deadlines: CallDeadlines | None) -> _UnaryBehaviour:
    if deadlines is None:

        async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> Any:
            request_id = _incoming_request_id(context)
            token = bind_request_id(request_id)
            try:
                return await behaviour(request, context)
            except Exception as error:
                await _answer(context, error, method, request_id)
            finally:
                reset_request_id(token)

        return wrapped

    async def wrapped_with_deadline(request: Any, context: grpc.aio.ServicerContext) -> Any:
        request_id = _incoming_request_id(context)
        token = bind_request_id(request_id)
        task = asyncio.current_task()
        assert task is not None  # grpc.aio runs each call in a task of its own
        deadlines.start(task)
        try:
            return await behaviour(request, context)
        except BaseException as error:
            if deadlines.finish(task):
                # The deadline's cancellations (it may have had to cancel more than once), answered here.
                while task.cancelling():
                    task.uncancel()
                failure: Exception = _deadline_exceeded(deadlines.seconds)
            elif isinstance(error, Exception):
                failure = error
            else:
                raise  # the client cancelled, or the server is stopping
            await _answer(context, failure, method, request_id)
        finally:
            if deadlines.finish(task):
                while task.cancelling():  # cut as it was answering: the answer stands
                    task.uncancel()
            reset_request_id(token)

    return wrapped_with_deadline


_MAX_HEADER = 4096


def _read_credentials(context: grpc.aio.ServicerContext) -> Credentials:
    """What the call presents, from one pass over its metadata; each value length-bounded."""
    authorization = api_key = service_key = forwarded = ""
    for key, value in context.invocation_metadata() or ():
        if not isinstance(value, str):
            continue
        if key == "authorization":
            authorization = value[:_MAX_HEADER]
        elif key == API_KEY_HEADER:
            api_key = value[:_MAX_HEADER]
        elif key == SERVICE_KEY_HEADER:
            service_key = value[:_MAX_HEADER]
        elif key == FORWARDED_FOR_HEADER:
            forwarded = value
    source = gateway_client_address(forwarded) if forwarded else (context.peer() or "")
    return Credentials(authorization, api_key, service_key, source[:256])


def _guarded(
    behaviour: _UnaryBehaviour, method: str, guard: Guard, audit: AuditLog | None
) -> _UnaryBehaviour:
    """`behaviour` behind the guard: refused (raising) unless the caller may; the principal bound."""

    async def checked(request: Any, context: grpc.aio.ServicerContext) -> Any:
        credentials = _read_credentials(context)

        async def note(principal: str, outcome: Outcome, detail: str) -> None:
            if audit is not None:
                await _record(audit, method, request, credentials, principal, outcome, detail)

        try:
            principal = guard.admit(method, credentials)
        except SwitchboardError as refusal:
            await note(f"anonymous:{credentials.source}", Outcome.DENIED, refusal.message)
            raise
        principal_token = bind_principal(principal)
        delegated_token = bind_delegated(_delegable(principal, credentials))
        try:
            result = await behaviour(request, context)
        except Exception as error:
            if not isinstance(error, grpc.aio.AbortError):
                await note(principal.label, Outcome.FAILED, getattr(error, "message", type(error).__name__))
            raise
        finally:
            reset_delegated(delegated_token)
            reset_principal(principal_token)
        if audit is not None:  # only admin RPCs are audited: the others must not pay for the summary
            await note(principal.label, Outcome.ALLOWED, _safe_summary(request, result, method))
        return result

    return checked


def _delegable(principal: Principal, credentials: Credentials) -> tuple[tuple[str, str], ...]:
    """What a call made on `principal`'s behalf presents: the credentials that just verified as theirs."""
    if principal.kind is PrincipalKind.ADMIN:
        return (("authorization", credentials.authorization),)
    if principal.kind is PrincipalKind.API_KEY:
        return ((API_KEY_HEADER, credentials.api_key),)
    return ()


_TARGET_FIELDS = ("name", "queue", "id", "rule", "job_id")


def _target(request: Any) -> str:
    """What an admin RPC acts on: the request's first non-empty name/queue/id field."""
    for field in _TARGET_FIELDS:
        value = getattr(request, field, None)
        if isinstance(value, str) and value:
            return value
    return ""


def _safe_summary(request: Any, result: Any, method: str) -> str:
    try:
        return audit_detail.summary(request, result)
    except Exception:  # the trail's detail must never change the call's answer
        logger.warning("audit detail not summarised", exc_info=True, extra={"method": method})
        return ""


async def _record(  # noqa: PLR0917 - one private call site, every argument a different thing
    audit: AuditLog,
    method: str,
    request: Any,
    credentials: Credentials,
    principal: str,
    outcome: Outcome,
    detail: str,
) -> None:
    entry = AuditEntry(
        time_ms=int(time.time() * 1000),
        principal=principal,
        operation=method,
        target=_target(request),
        outcome=outcome,
        source=credentials.source,
        detail=detail,
    )
    try:
        await audit.record(entry)
    except Exception:  # a trail that cannot be written must not change the call's answer
        logger.warning("audit entry not written", exc_info=True, extra={"method": method})


async def _answer(context: grpc.aio.ServicerContext, error: Exception, method: str, request_id: str) -> None:
    """Ends the call with the status `error` stands for (re-raises an abort already under way)."""
    if isinstance(error, SwitchboardError):
        await _abort(context, error, method)
    elif isinstance(error, grpc.aio.AbortError):
        raise error
    elif isinstance(error, NotImplementedError):
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{method} is not implemented yet")
    elif (unavailable := _unavailable_for(error)) is not None:
        if isinstance(error, ResponseError) and not isinstance(error, _TRANSIENT_REPLIES):
            # Redis answered, and refused: it may be down to us (a script's bug), so keep the whole story.
            logger.error("Redis refused a command", exc_info=error, extra={"method": method})
        await _abort(context, unavailable, method, cause=error)
    else:
        logger.error("unexpected error", exc_info=error, extra={"method": method})
        await context.abort(
            grpc.StatusCode.INTERNAL, f"internal error; quote request id {request_id} when reporting it"
        )


def _unavailable_for(error: BaseException) -> UnavailableError | None:
    """The UNAVAILABLE error a failure of Redis, or a timeout, stands for; None for anything else.

    The message is the caller's: it says what happened and to retry, never Redis's address or reply.
    """
    if isinstance(error, RedisTimeoutError | TimeoutError):
        message, reason = "Redis did not answer in time; retry in a moment", "REDIS_TIMEOUT"
    elif isinstance(error, RedisConnectionError) and not isinstance(error, BusyLoadingError):
        message, reason = "Redis is unreachable; retry in a moment", "REDIS_UNREACHABLE"
    elif isinstance(error, RedisError):
        message, reason = "Redis could not serve this call right now; retry in a moment", "REDIS_UNAVAILABLE"
    else:
        return None
    return UnavailableError(message, reason=reason, retry_after_seconds=REDIS_RETRY_AFTER_SECONDS)


def _deadline_exceeded(deadline_seconds: float) -> UnavailableError:
    return UnavailableError(
        f"Redis did not answer within this call's deadline of {deadline_seconds:g} s; retry in a moment",
        reason="REDIS_DEADLINE_EXCEEDED",
        retry_after_seconds=REDIS_RETRY_AFTER_SECONDS,
    )


async def _abort(
    context: grpc.aio.ServicerContext,
    error: SwitchboardError,
    method: str,
    *,
    cause: BaseException | None = None,
) -> None:
    extra: dict[str, object] = {"method": method, "reason": error.reason}
    if cause is not None:
        extra["cause"] = f"{type(cause).__name__}: {cause}"[:500]
    logger.info("call failed: %s", error.message, extra=extra)
    status = rpc_status.to_status(to_rpc_status(error))
    metadata = tuple(status.trailing_metadata)
    if error.retry_after_seconds is not None:
        # For REST clients: the gateway's transcoder passes it on as the HTTP Retry-After (whole seconds).
        metadata = (*metadata, ("retry-after", str(max(1, math.ceil(error.retry_after_seconds)))))
    await context.abort(status.code, status.details, trailing_metadata=metadata)
