"""The scope every RPC of ours runs in: a request id per call, domain errors to gRPC status.

Servicers and domain code raise `SwitchboardError`s; this is the only place they become status codes.
An unexpected exception is logged once, with the method and request id, and answered as INTERNAL
without leaking its text.

The scope is put around each servicer method once, when the service is registered
(`with_call_scope`), rather than by a server interceptor: grpc.aio runs an interceptor on every call and
it must build a new method handler each time, a cost every rate-limit check would pay.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from grpc_status import rpc_status

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


def with_call_scope(servicer: object, descriptor: ServiceDescriptor) -> Any:
    """`servicer`'s RPCs of `descriptor`, each binding its request id and mapping what it raises."""
    scoped = _ScopedServicer()
    for method in descriptor.methods:
        behaviour = getattr(servicer, method.name)
        full_name = f"/{descriptor.full_name}/{method.name}"
        if method.client_streaming or method.server_streaming:
            # None of our RPCs streams; one that does needs a scope that wraps its iterator.
            raise TypeError(f"{full_name} streams: the call scope wraps unary RPCs only")
        scoped.__dict__[method.name] = _wrap_unary(behaviour, full_name)
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
