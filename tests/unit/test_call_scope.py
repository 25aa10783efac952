"""The call scope refuses what it cannot wrap, rather than serve a streaming RPC without error mapping."""

from __future__ import annotations

import pytest
from grpc_health.v1 import health_pb2

from services.runtime.call_scope import with_call_scope


class _Health:
    async def Check(self, request: object, context: object) -> object:
        return request

    async def List(self, request: object, context: object) -> object:
        return request

    async def Watch(self, request: object, context: object) -> object:
        return request


def test_a_streaming_rpc_is_refused_at_registration() -> None:
    health = health_pb2.DESCRIPTOR.services_by_name["Health"]  # Watch streams its answers
    with pytest.raises(TypeError, match=r"/grpc.health.v1.Health/Watch streams"):
        with_call_scope(_Health(), health)
