"""The dashboard's settings (`DASHBOARD_*`), a group of the admin service's settings."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class DashboardSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DASHBOARD_", extra="ignore", frozen=True)

    enabled: bool = Field(default=True, description="Serve the dashboard from the admin process.")
    port: int = Field(
        default=8091, ge=0, le=65535, description="The dashboard's HTTP port (0 picks a free one)."
    )
    port_file: str | None = Field(
        default=None, description="Where to write the port it listens on (for tests and the devstack)."
    )
    poll_interval_ms: int = Field(
        default=1000, ge=500, le=1900, description="How often an open page refreshes its live parts."
    )
    page_size: int = Field(default=25, ge=5, le=200, description="Jobs per page of a list.")
    max_bulk_jobs: int = Field(
        default=1000,
        ge=1,
        le=10_000,
        description="Most jobs one bulk action touches (the rest: run it again).",
    )
    call_timeout_seconds: float = Field(
        default=5.0, gt=0, le=30, description="Deadline of each gRPC call the dashboard makes."
    )
