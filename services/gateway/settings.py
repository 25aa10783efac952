"""The gateway's settings: where Envoy listens, where each service answers, where the descriptors are."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.runtime.settings import PeerAddresses


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore", frozen=True)

    listen_address: str = "0.0.0.0"  # noqa: S104 - the gateway is the stack's public face
    port: int = Field(default=8080, ge=1, le=65535)
    admin_port: int = Field(default=9901, ge=0, le=65535, description="Envoy admin, on 127.0.0.1 only.")
    descriptor_path: str = Field(
        default="gen/descriptor.binpb", description="The descriptor set `make protos` writes."
    )
    ratelimit_timeout_ms: int = Field(
        default=50, ge=5, le=5000, description="How long Envoy waits for a rate-limit decision."
    )
    ratelimit_fail_closed: bool = Field(
        default=False, description="Deny requests when the rate-limit service does not answer."
    )
    peers: PeerAddresses = Field(default_factory=PeerAddresses)
