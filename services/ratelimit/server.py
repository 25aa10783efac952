"""Wires the rate-limit service: the rules, the limiter, our API and Envoy's protocol."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from redis.exceptions import RedisError

from envoyrls.v3 import rls_pb2, rls_pb2_grpc
from services.ratelimit.gateway_limits import GatewayLimits
from services.ratelimit.limiter import Limiter
from services.ratelimit.rules import RuleBook
from services.ratelimit.servicer import EnvoyRateLimitServicer, RateLimitServicer
from services.ratelimit.settings import RateLimitSettings
from services.runtime.server import ServiceBinding, ServiceContext
from switchboard.ratelimit.v1 import ratelimit_pb2, ratelimit_pb2_grpc

logger = logging.getLogger(__name__)


async def build(settings: RateLimitSettings, context: ServiceContext) -> Sequence[ServiceBinding]:
    rules = RuleBook(context.redis, prefix=settings.ratelimit_key_prefix, defaults=settings.seed_rules())
    limiter = Limiter(
        context.redis_mux,
        prefix=settings.ratelimit_key_prefix,
        timeout_seconds=settings.check_timeout_seconds,
    )
    try:
        await rules.load()
        await limiter.warm_up()
    except RedisError:
        # Redis down at start: serve anyway (health says NOT_SERVING); the refresher loads the rules later.
        logger.warning("rules not loaded yet: Redis unreachable", exc_info=True)
    refresher = asyncio.create_task(rules.keep_fresh(settings.rules_refresh_seconds))
    context.exit_stack.callback(refresher.cancel)
    gateway = GatewayLimits(rules, limiter, domain=settings.gateway_domain)
    return [
        ServiceBinding.of(
            ratelimit_pb2.DESCRIPTOR.services_by_name["RateLimitService"],
            ratelimit_pb2_grpc.add_RateLimitServiceServicer_to_server,
            RateLimitServicer(rules, limiter, gateway),
        ),
        ServiceBinding.of(
            rls_pb2.DESCRIPTOR.services_by_name["RateLimitService"],
            rls_pb2_grpc.add_RateLimitServiceServicer_to_server,
            EnvoyRateLimitServicer(gateway),
        ),
    ]
