"""gRPC client channels for service-to-service calls: a deadline on every call, the request id passed on,
and the deployment's service key (the caller's identity: the callee verifies it in its call scope)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.access.context import delegated_credentials
from services.access.guard import SERVICE_KEY_HEADER
from services.runtime.request_context import REQUEST_ID_HEADER, current_request_id


class _CallDefaults(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """Gives a call without a deadline the channel's default one, and forwards the current request id."""

    def __init__(self, default_timeout: float, service_key: str | None) -> None:
        self._default_timeout = default_timeout
        self._service_key = service_key

    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Awaitable[Any]],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        metadata = grpc.aio.Metadata(*(client_call_details.metadata or ()))
        request_id = current_request_id()
        if request_id is not None and REQUEST_ID_HEADER not in metadata:
            metadata.add(REQUEST_ID_HEADER, request_id)
        delegated = delegated_credentials()
        if delegated:
            # On behalf of the caller being served: its own (verified) credentials, not the service's.
            for key, value in delegated:
                metadata.add(key, value)
        elif self._service_key is not None:
            metadata.add(SERVICE_KEY_HEADER, self._service_key)
        details = grpc.aio.ClientCallDetails(
            method=client_call_details.method,
            timeout=client_call_details.timeout
            if client_call_details.timeout is not None
            else self._default_timeout,
            metadata=metadata,
            credentials=client_call_details.credentials,
            wait_for_ready=client_call_details.wait_for_ready,
        )
        return await continuation(details, request)


def open_channel(address: str, *, default_timeout: float, service_key: str | None = None) -> grpc.aio.Channel:
    """An insecure channel (inside the cluster network) whose unary calls all carry a deadline and, when
    given, the service key (`SWITCHBOARD_SERVICE_KEY`)."""
    return grpc.aio.insecure_channel(address, interceptors=[_CallDefaults(default_timeout, service_key)])


async def check_health(channel: grpc.aio.Channel, service: str = "", *, deadline_seconds: float) -> str:
    """The peer's health status name for `service` (SERVING, NOT_SERVING, ...); raises when unreachable."""
    stub = health_pb2_grpc.HealthStub(channel)
    response = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=deadline_seconds)
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))
