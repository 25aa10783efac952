"""Rate-limit RPCs, ours and Envoy's: proto ⇄ domain, nothing more."""

from __future__ import annotations

import grpc
from google.protobuf import duration_pb2

from envoyrls.v3 import rls_pb2, rls_pb2_grpc
from services.access.guard import FORWARDED_FOR_HEADER, gateway_client_address
from services.ratelimit.gateway_limits import GatewayLimits
from services.ratelimit.limiter import Limiter
from services.ratelimit.rules import Algorithm, Rule, RuleBook
from services.runtime.errors import InvalidArgumentError
from switchboard.ratelimit.v1 import ratelimit_pb2, ratelimit_pb2_grpc

_ALGORITHM_TO_PROTO = {
    Algorithm.GCRA: ratelimit_pb2.ALGORITHM_GCRA,
    Algorithm.FIXED_WINDOW: ratelimit_pb2.ALGORITHM_FIXED_WINDOW,
}
_ALGORITHM_FROM_PROTO = {value: key for key, value in _ALGORITHM_TO_PROTO.items()}
_Unit = rls_pb2.RateLimitResponse.RateLimit
_UNITS = ((1000, _Unit.SECOND), (60_000, _Unit.MINUTE), (3_600_000, _Unit.HOUR), (86_400_000, _Unit.DAY))


def _gateway_client(context: grpc.aio.ServicerContext) -> str:
    """The client address the gateway saw; empty for a call made straight to the service."""
    for key, value in context.invocation_metadata() or ():
        if key == FORWARDED_FOR_HEADER and isinstance(value, str):
            return gateway_client_address(value)
    return ""


class RateLimitServicer(ratelimit_pb2_grpc.RateLimitServiceServicer):
    def __init__(self, rules: RuleBook, limiter: Limiter, gateway: GatewayLimits) -> None:
        self._rules = rules
        self._limiter = limiter
        self._gateway = gateway

    async def ListRules(
        self, request: ratelimit_pb2.ListRulesRequest, context: grpc.aio.ServicerContext
    ) -> ratelimit_pb2.ListRulesResponse:
        return ratelimit_pb2.ListRulesResponse(rules=[rule_to_proto(rule) for rule in self._rules.all()])

    async def PutRule(
        self, request: ratelimit_pb2.PutRuleRequest, context: grpc.aio.ServicerContext
    ) -> ratelimit_pb2.Rule:
        if request.rule.name and request.rule.name != request.name:
            raise InvalidArgumentError.for_field(
                "rule.name", f"the body names {request.rule.name!r} but the path names {request.name!r}"
            )
        if request.rule.algorithm not in (ratelimit_pb2.ALGORITHM_UNSPECIFIED, *_ALGORITHM_FROM_PROTO):
            raise InvalidArgumentError.for_field(
                "rule.algorithm", "use ALGORITHM_GCRA or ALGORITHM_FIXED_WINDOW"
            )
        rule = Rule(
            name=request.name,
            limit=request.rule.limit,
            period_ms=request.rule.period.ToMilliseconds(),
            burst=request.rule.burst,
            algorithm=_ALGORITHM_FROM_PROTO.get(request.rule.algorithm, Algorithm.GCRA),
            shadow_mode=request.rule.shadow_mode,
        )
        return rule_to_proto(await self._rules.put(rule))

    async def DeleteRule(
        self, request: ratelimit_pb2.DeleteRuleRequest, context: grpc.aio.ServicerContext
    ) -> ratelimit_pb2.DeleteRuleResponse:
        await self._rules.delete(request.name)
        return ratelimit_pb2.DeleteRuleResponse()

    async def CheckRateLimit(
        self, request: ratelimit_pb2.CheckRateLimitRequest, context: grpc.aio.ServicerContext
    ) -> ratelimit_pb2.CheckRateLimitResponse:
        decision = await self._gateway.check_for_client(
            _gateway_client(context), self._rules.get(request.rule), request.key, request.cost or 1
        )
        return ratelimit_pb2.CheckRateLimitResponse(
            allowed=decision.allowed,
            limit=decision.limit,
            remaining=decision.remaining,
            reset_after_ms=decision.reset_after_ms,
            retry_after_ms=decision.retry_after_ms,
        )

    async def GetUsage(
        self, request: ratelimit_pb2.GetUsageRequest, context: grpc.aio.ServicerContext
    ) -> ratelimit_pb2.GetUsageResponse:
        decision = await self._limiter.peek(self._rules.get(request.rule), request.key)
        return ratelimit_pb2.GetUsageResponse(
            limit=decision.limit,
            remaining=decision.remaining,
            reset_after_ms=decision.reset_after_ms,
            retry_after_ms=decision.retry_after_ms,
        )


class EnvoyRateLimitServicer(rls_pb2_grpc.RateLimitServiceServicer):
    """Envoy's global rate-limit protocol (`envoy.service.ratelimit.v3.RateLimitService`)."""

    def __init__(self, limits: GatewayLimits) -> None:
        self._limits = limits

    async def ShouldRateLimit(
        self, request: rls_pb2.RateLimitRequest, context: grpc.aio.ServicerContext
    ) -> rls_pb2.RateLimitResponse:
        descriptors = [{entry.key: entry.value for entry in d.entries} for d in request.descriptors]
        verdicts = await self._limits.check(request.domain, descriptors, request.hits_addend)
        response = rls_pb2.RateLimitResponse(overall_code=rls_pb2.RateLimitResponse.OK)
        longest_wait_ms = 0
        for verdict in verdicts:
            status = response.statuses.add(code=rls_pb2.RateLimitResponse.OK)
            if verdict.rule is None or verdict.decision is None:
                continue
            decision = verdict.decision
            status.current_limit.CopyFrom(envoy_limit(verdict.rule))
            status.limit_remaining = decision.remaining
            status.duration_until_reset.CopyFrom(_duration(decision.reset_after_ms))
            if not decision.allowed:
                status.code = rls_pb2.RateLimitResponse.OVER_LIMIT
                response.overall_code = rls_pb2.RateLimitResponse.OVER_LIMIT
                longest_wait_ms = max(longest_wait_ms, decision.retry_after_ms)
        if response.overall_code == rls_pb2.RateLimitResponse.OVER_LIMIT:
            # HTTP's Retry-After is whole seconds: round up so a client that obeys it is let through.
            response.response_headers_to_add.add(
                key="retry-after", value=str(max(1, -(-longest_wait_ms // 1000)))
            )
        return response


def envoy_limit(rule: Rule) -> rls_pb2.RateLimitResponse.RateLimit:
    """The rule in Envoy's terms (requests per second, minute, hour or day), for X-RateLimit-Limit.

    Envoy knows only those units: a rule over another period is stated per the smallest unit that holds
    a whole number of its periods (1000 per 10 s → 6000 per minute), else per day, rounded down.
    """
    unit_ms, unit = next(
        ((ms, u) for ms, u in _UNITS if ms >= rule.period_ms and ms % rule.period_ms == 0), _UNITS[-1]
    )
    return rls_pb2.RateLimitResponse.RateLimit(
        name=rule.name, requests_per_unit=rule.limit * unit_ms // rule.period_ms, unit=unit
    )


def rule_to_proto(rule: Rule) -> ratelimit_pb2.Rule:
    return ratelimit_pb2.Rule(
        name=rule.name,
        limit=rule.limit,
        period=_duration(rule.period_ms),
        burst=rule.burst,
        algorithm=_ALGORITHM_TO_PROTO[rule.algorithm],
        shadow_mode=rule.shadow_mode,
    )


def _duration(ms: int) -> duration_pb2.Duration:
    duration = duration_pb2.Duration()
    duration.FromMilliseconds(ms)
    return duration
