"""The bigquery service's settings."""

from __future__ import annotations

from pydantic import Field

from services.runtime.settings import ServiceSettings


class BigQuerySettings(ServiceSettings):
    grpc_port: int = Field(default=50053, ge=0, le=65535)
