"""Reads the rate-limit rules from the rate-limit service's API, as throttles for the queues that name one."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import grpc

from services.limit_algorithms import Throttle
from switchboard.ratelimit.v1 import ratelimit_pb2, ratelimit_pb2_grpc

_ALGORITHMS = {ratelimit_pb2.ALGORITHM_FIXED_WINDOW: "fixed_window"}


def rules_reader(
    channel: grpc.aio.Channel, *, deadline_seconds: float
) -> Callable[[], Awaitable[dict[str, Throttle]]]:
    stub = ratelimit_pb2_grpc.RateLimitServiceStub(channel)

    async def read() -> dict[str, Throttle]:
        response = await stub.ListRules(ratelimit_pb2.ListRulesRequest(), timeout=deadline_seconds)
        return {
            rule.name: Throttle(
                algorithm=_ALGORITHMS.get(rule.algorithm, "gcra"),
                period_ms=rule.period.ToMilliseconds(),
                limit=rule.limit,
                capacity=rule.burst or rule.limit,
            )
            for rule in response.rules
        }

    return read
