"""The rate-limit service's settings."""

from __future__ import annotations

from pydantic import Field

from services.runtime.settings import ServiceSettings


class RateLimitSettings(ServiceSettings):
    grpc_port: int = Field(default=50052, ge=0, le=65535)
    ratelimit_key_prefix: str = Field(
        default="rl", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$"
    )
    check_timeout_seconds: float = Field(
        default=0.04, gt=0, le=5, description="A check that Redis does not answer in time fails UNAVAILABLE."
    )
    rules_refresh_seconds: float = Field(default=0.5, gt=0, le=10)
    gateway_domain: str = "switchboard"
