"""The scope every RPC of ours runs in: a request id per call, the caller checked, domain errors to status.

With a `Guard` (every service process has one), each call's credentials are checked against what its RPC
needs (`services.access`) before the servicer runs, the principal is bound for the servicer
(`services.access.context`), and every admin RPC's outcome, allowed, denied or failed, goes to the audit
trail.

Servicers and domain code raise `SwitchboardError`s; this is the only place they become status codes.
An unexpected exception is logged once, with the method and request id, and answered as INTERNAL
without leaking its text.

The scope is put around each servicer method once, when the service is registered
(`with_call_scope`), rather than by a server interceptor: grpc.aio runs an interceptor on every call and
it must build a new method handler each time, a cost every rate-limit check would pay.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from grpc_status import rpc_status

from services.access.audit import AuditEntry, AuditLog, Outcome
from services.access.context import bind_principal, reset_principal
from services.access.guard import API_KEY_HEADER, SERVICE_KEY_HEADER, Credentials, Guard
from services.access.scopes import Scope
from services.runtime.errors import SwitchboardError
from services.runtime.request_context import (
    REQUEST_ID_HEADER,
    bind_request_id,
    new_request_id,
    reset_request_id,
)
from services.runtime.status import to_rpc_status

logger = logging.getLogger(__name__)

_UnaryBehaviour = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]


class _ScopedServicer:
    """Stands in for a servicer when it is registered: the same RPC methods, each inside the scope."""


def with_call_scope(
    servicer: object, descriptor: ServiceDescriptor, guard: Guard | None = None, audit: AuditLog | None = None
) -> Any:
    """`servicer`'s RPCs of `descriptor`, each binding its request id, checked by `guard` (none: open),
    and mapping what it raises; admin RPCs are recorded in `audit`."""
    scoped = _ScopedServicer()
    for method in descriptor.methods:
        behaviour = getattr(servicer, method.name)
        full_name = f"/{descriptor.full_name}/{method.name}"
        if method.client_streaming or method.server_streaming:
            # None of our RPCs streams; one that does needs a scope that wraps its iterator.
            raise TypeError(f"{full_name} streams: the call scope wraps unary RPCs only")
        if guard is None:
            scoped.__dict__[method.name] = _wrap_unary(behaviour, full_name)
        else:
            audited = audit if guard.requirement(full_name) is Scope.ADMIN else None
            scoped.__dict__[method.name] = _wrap_guarded(behaviour, full_name, guard, audited)
    return scoped


def _incoming_request_id(context: grpc.aio.ServicerContext) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == REQUEST_ID_HEADER and value:
            return str(value)[:128]
    return new_request_id()


def _wrap_unary(behaviour: _UnaryBehaviour, method: str) -> _UnaryBehaviour:
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


_MAX_HEADER = 4096


def _read_metadata(context: grpc.aio.ServicerContext) -> tuple[str, Credentials]:
    """(request id, credentials) from one pass over the call's metadata; each value length-bounded."""
    request_id = authorization = api_key = service_key = forwarded = ""
    for key, value in context.invocation_metadata() or ():
        if not isinstance(value, str):
            continue
        if key == REQUEST_ID_HEADER:
            request_id = value[:128]
        elif key == "authorization":
            authorization = value[:_MAX_HEADER]
        elif key == API_KEY_HEADER:
            api_key = value[:_MAX_HEADER]
        elif key == SERVICE_KEY_HEADER:
            service_key = value[:_MAX_HEADER]
        elif key == "x-forwarded-for":
            forwarded = value[:256]
    source = forwarded.split(",")[0].strip() if forwarded else (context.peer() or "")
    return request_id or new_request_id(), Credentials(authorization, api_key, service_key, source[:256])


def _wrap_guarded(
    behaviour: _UnaryBehaviour, method: str, guard: Guard, audit: AuditLog | None
) -> _UnaryBehaviour:
    async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> Any:
        request_id, credentials = _read_metadata(context)
        token = bind_request_id(request_id)

        async def note(principal: str, outcome: Outcome, detail: str = "") -> None:
            if audit is not None:
                await _record(audit, method, request, credentials, principal, outcome, detail)

        try:
            try:
                principal = guard.admit(method, credentials)
            except SwitchboardError as refusal:
                await note(f"anonymous:{credentials.source}", Outcome.DENIED, refusal.message)
                raise
            principal_token = bind_principal(principal)
            try:
                result = await behaviour(request, context)
            except Exception as error:
                if not isinstance(error, grpc.aio.AbortError):
                    await note(
                        principal.label, Outcome.FAILED, getattr(error, "message", type(error).__name__)
                    )
                raise
            finally:
                reset_principal(principal_token)
            await note(principal.label, Outcome.ALLOWED)
            return result
        except Exception as error:
            await _answer(context, error, method, request_id)
        finally:
            reset_request_id(token)

    return wrapped


_TARGET_FIELDS = ("name", "queue", "id", "rule", "job_id")


def _target(request: Any) -> str:
    """What an admin RPC acts on: the request's first non-empty name/queue/id field."""
    for field in _TARGET_FIELDS:
        value = getattr(request, field, None)
        if isinstance(value, str) and value:
            return value
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
    else:
        logger.error("unexpected error", exc_info=error, extra={"method": method})
        await context.abort(
            grpc.StatusCode.INTERNAL, f"internal error; quote request id {request_id} when reporting it"
        )


async def _abort(context: grpc.aio.ServicerContext, error: SwitchboardError, method: str) -> None:
    logger.info("call failed: %s", error.message, extra={"method": method, "reason": error.reason})
    status = rpc_status.to_status(to_rpc_status(error))
    await context.abort(status.code, status.details, trailing_metadata=status.trailing_metadata)
