"""The gateway's settings: where Envoy listens, where each service answers, where the descriptors are."""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator
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
    # Both set: the listener speaks TLS only (HTTP/2 and HTTP/1.1 by ALPN), with this certificate.
    tls_cert_file: str | None = Field(default=None, description="PEM certificate chain of the listener.")
    tls_key_file: str | None = Field(default=None, description="PEM private key of that certificate.")

    @model_validator(mode="after")
    def _tls_files_together(self) -> Self:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("set both GATEWAY_TLS_CERT_FILE and GATEWAY_TLS_KEY_FILE, or neither")
        return self
