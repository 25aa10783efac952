"""The admin service's settings."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from services.admin.dashboard.settings import DashboardSettings
from services.runtime.settings import PeerAddresses, ServiceSettings
from services.warehouse.settings import BigQueryBackendSettings


class AdminSettings(ServiceSettings):
    grpc_port: int = Field(default=50055, ge=0, le=65535)
    connection_test_timeout_seconds: float = Field(
        default=2.0, gt=0, le=30, description="How long one check of the connection test may take."
    )
    peers: PeerAddresses = Field(default_factory=PeerAddresses)
    bigquery: BigQueryBackendSettings = Field(
        default_factory=BigQueryBackendSettings, description="Where the connection test's SELECT 1 runs."
    )
    descriptor_path: str = Field(
        default=str(Path(__file__).resolve().parents[2] / "gen" / "descriptor.binpb"),
        description="The descriptor set (the one Envoy's transcoder reads): how the gateway's authorizer "
        "maps a route to its RPC.",
    )
    jobs_key_prefix: str = Field(
        default="sb",
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.\-]+$",
        description="The jobs' key prefix (JOBS_KEY_PREFIX): the settings document is `<prefix>:settings`.",
    )
    settings_history_max_entries: int = Field(
        default=1_000, ge=10, le=100_000, description="Settings changes kept in the history, newest."
    )
    dashboard: DashboardSettings = Field(default_factory=DashboardSettings)
