"""The server interceptor every service runs: a request id per call, domain errors to gRPC status.

Servicers and domain code raise `SwitchboardError`s; this is the only place they become status codes.
An unexpected exception is logged once, with the method and request id, and answered as INTERNAL
without leaking its text.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
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
_StreamBehaviour = Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]]


class ErrorMappingInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Binds the caller's `x-request-id` (or a new one) and maps raised errors to status with details."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method: str = handler_call_details.method
        request_id = _incoming_request_id(handler_call_details) or new_request_id()
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _wrap_unary(handler.unary_unary, method, request_id),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None and inspect.isasyncgenfunction(handler.unary_stream):
            return grpc.unary_stream_rpc_method_handler(
                _wrap_stream(handler.unary_stream, method, request_id),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        # Streams written with `context.write` (health's Watch) and client streams (reflection) are the
        # library's own and raise no domain errors: they pass as they are.
        return handler


def _incoming_request_id(details: grpc.HandlerCallDetails) -> str | None:
    for key, value in details.invocation_metadata or ():
        if key == REQUEST_ID_HEADER and value:
            return str(value)[:128]
    return None


def _wrap_unary(behaviour: _UnaryBehaviour, method: str, request_id: str) -> _UnaryBehaviour:
    async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> Any:
        async with _call(context, method, request_id):
            return await behaviour(request, context)

    return wrapped


def _wrap_stream(behaviour: _StreamBehaviour, method: str, request_id: str) -> _StreamBehaviour:
    async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        async with _call(context, method, request_id):
            async for response in behaviour(request, context):
                yield response

    return wrapped


@contextlib.asynccontextmanager
async def _call(context: grpc.aio.ServicerContext, method: str, request_id: str) -> AsyncIterator[None]:
    """One call's scope: its request id bound for logs, and whatever it raises turned into a status."""
    token = bind_request_id(request_id)
    try:
        yield
    except SwitchboardError as error:
        await _abort(context, error, method)
    except grpc.aio.AbortError:
        raise
    except NotImplementedError:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{method} is not implemented yet")
    except Exception:
        logger.exception("unexpected error", extra={"method": method})
        await context.abort(
            grpc.StatusCode.INTERNAL, f"internal error; quote request id {request_id} when reporting it"
        )
    finally:
        reset_request_id(token)


async def _abort(context: grpc.aio.ServicerContext, error: SwitchboardError, method: str) -> None:
    logger.info("call failed: %s", error.message, extra={"method": method, "reason": error.reason})
    status = rpc_status.to_status(to_rpc_status(error))
    await context.abort(status.code, status.details, trailing_metadata=status.trailing_metadata)
