"""Wires the ratelimit service."""

from __future__ import annotations

from collections.abc import Sequence

from services.ratelimit.servicer import RateLimitServicer
from services.ratelimit.settings import RateLimitSettings
from services.runtime.server import ServiceBinding, ServiceContext
from switchboard.ratelimit.v1 import ratelimit_pb2, ratelimit_pb2_grpc


async def build(settings: RateLimitSettings, context: ServiceContext) -> Sequence[ServiceBinding]:
    return [
        ServiceBinding.of(
            ratelimit_pb2.DESCRIPTOR.services_by_name["RateLimitService"],
            ratelimit_pb2_grpc.add_RateLimitServiceServicer_to_server,
            RateLimitServicer(),  # type: ignore[abstract]  # its RPCs answer UNIMPLEMENTED until built
        ),
    ]
