"""RateLimit RPCs: proto ⇄ domain, nothing more."""

from __future__ import annotations

from switchboard.ratelimit.v1 import ratelimit_pb2_grpc


class RateLimitServicer(ratelimit_pb2_grpc.RateLimitServiceServicer):
    """The RPCs land with the rate-limiting issue (#4).

    Until then each answers UNIMPLEMENTED, 501 through the gateway.
    """
