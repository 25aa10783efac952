"""The jobs service's settings."""

from __future__ import annotations

from pydantic import Field

from services.runtime.settings import ServiceSettings


class JobsSettings(ServiceSettings):
    grpc_port: int = Field(default=50051, ge=0, le=65535)
