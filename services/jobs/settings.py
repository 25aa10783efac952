"""The jobs service's and workers' settings."""

from __future__ import annotations

from pydantic import Field, field_validator

from services.jobs.queues import QUEUE_NAMES
from services.runtime.settings import PeerAddresses, ServiceSettings


class JobsSettings(ServiceSettings):
    grpc_port: int = Field(default=50051, ge=0, le=65535)
    jobs_key_prefix: str = Field(default="sb", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    diagnostics_enabled: bool = Field(default=True, description="Register the diagnostics.* tasks.")
    max_payload_bytes: int = Field(default=1024 * 1024, ge=1, le=4 * 1024 * 1024)
    max_result_bytes: int = Field(
        default=1024 * 1024, ge=1, le=4 * 1024 * 1024, description="A task's result, as JSON, at most."
    )
    metrics_port: int = Field(default=0, ge=0, le=65535, description="Prometheus /metrics; 0: off.")
    queue_depth_interval_seconds: float = Field(
        default=5.0, gt=0, le=300, description="How often the service reads queue depths into /metrics."
    )


class WorkerSettings(JobsSettings):
    peers: PeerAddresses = Field(default_factory=PeerAddresses)
    queues: str = Field(default=",".join(QUEUE_NAMES), description="Comma-separated queues to serve.")
    maintenance_interval_seconds: float = Field(default=1.0, gt=0, le=60)

    @field_validator("queues")
    @classmethod
    def _known_queues(cls, value: str) -> str:
        names = [name.strip() for name in value.split(",") if name.strip()]
        unknown = sorted(set(names) - set(QUEUE_NAMES))
        if not names or unknown:
            raise ValueError(f"unknown queue(s) {unknown}; use some of {', '.join(QUEUE_NAMES)}")
        return ",".join(names)

    @property
    def queue_list(self) -> list[str]:
        return self.queues.split(",")
