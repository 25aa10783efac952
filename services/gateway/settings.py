"""The gateway's settings: where Envoy listens, where each service answers, where the descriptors are,
and the limits Envoy enforces before a request reaches a service."""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.runtime.message_size import (
    ANALYTICS_BODY_LIMIT_BYTES,
    DEFAULT_BODY_LIMIT_BYTES,
    KIB,
    MAX_BODY_LIMIT_BYTES,
)
from services.runtime.settings import PeerAddresses

API_KEY_MAX_LENGTH = 128
"""The longest x-api-key the gateway takes (a longer one is refused with 401): it must fit a descriptor."""


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
    body_limit_bytes: int = Field(
        default=DEFAULT_BODY_LIMIT_BYTES,
        ge=64 * KIB,
        le=MAX_BODY_LIMIT_BYTES,
        description="Largest request body of a route (413 above it); the services' gRPC limit is built "
        "on the largest allowed value, so it cannot be raised past what they accept.",
    )
    analytics_body_limit_bytes: int = Field(
        default=ANALYTICS_BODY_LIMIT_BYTES,
        ge=64 * KIB,
        le=MAX_BODY_LIMIT_BYTES,
        description="Largest request body of /api/analytics and the analytics gRPC service.",
    )
    grpc_default_timeout_seconds: float = Field(
        default=30.0, gt=0, le=300, description="Deadline of a native gRPC call that sends no grpc-timeout."
    )
    grpc_max_timeout_seconds: float = Field(
        default=300.0, gt=0, le=3600, description="Cap on the deadline a native gRPC call asks for."
    )
    backstop_requests_per_second: int = Field(
        default=1000,
        ge=1,
        le=1_000_000,
        description="Per-instance ceiling of each route over all clients (local rate limit, 429 above "
        "it): overload is refused rather than let through when the rate-limit service cannot answer in "
        "time. Size it under what the rate-limit service answers within the timeout (the benchmark's "
        "overload rows).",
    )
    backstop_client_requests_per_second: int = Field(
        default=200,
        ge=1,
        le=1_000_000,
        description="Per-instance ceiling of one client (its x-api-key, else its address) on a route: "
        "above the `api` rule, so it only acts when the rate-limit service's verdicts do not come.",
    )
    peers: PeerAddresses = Field(default_factory=PeerAddresses)
    reflection_address: str = Field(
        default="localhost:50056",
        description="The gateway's reflection service (`python -m services.gateway.reflection`); empty: "
        "the gateway routes no reflection.",
    )
    body_sink_address: str = Field(
        default="localhost:50057",
        description="The body sink in the reflection process: a REST request declaring a Content-Length "
        "over its route's limit is drained there and answered 413, so clients that send their whole body "
        "before reading (urllib) get the answer, not a reset. Empty: Envoy's buffer filter answers alone.",
    )
    dashboard_address: str = Field(
        default="localhost:8091",
        description="The queue dashboard's HTTP server in the admin process (DASHBOARD_PORT), routed at "
        "/api/bull-board/. Empty: the gateway routes no dashboard.",
    )
    # Both set: the listener speaks TLS only (HTTP/2 and HTTP/1.1 by ALPN), with this certificate.
    tls_cert_file: str | None = Field(default=None, description="PEM certificate chain of the listener.")
    tls_key_file: str | None = Field(default=None, description="PEM private key of that certificate.")

    @model_validator(mode="after")
    def _tls_files_together(self) -> Self:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("set both GATEWAY_TLS_CERT_FILE and GATEWAY_TLS_KEY_FILE, or neither")
        return self
