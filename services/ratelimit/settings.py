"""The ratelimit service's settings."""

from __future__ import annotations

from pydantic import Field

from services.runtime.settings import ServiceSettings


class RateLimitSettings(ServiceSettings):
    grpc_port: int = Field(default=50052, ge=0, le=65535)
