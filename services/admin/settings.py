"""The admin service's settings."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from services.runtime.settings import PeerAddresses, ServiceSettings


class AdminSettings(ServiceSettings):
    grpc_port: int = Field(default=50055, ge=0, le=65535)
    connection_test_timeout_seconds: float = Field(
        default=2.0, gt=0, le=30, description="How long one check of the connection test may take."
    )
    peers: PeerAddresses = Field(default_factory=PeerAddresses)
    descriptor_path: str = Field(
        default=str(Path(__file__).resolve().parents[2] / "gen" / "descriptor.binpb"),
        description="The descriptor set (the one Envoy's transcoder reads): how the gateway's authorizer "
        "maps a route to its RPC.",
    )
