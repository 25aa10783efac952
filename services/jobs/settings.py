"""The jobs service's and workers' settings."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from services.jobs.queues import QUEUE_NAMES
from services.runtime.settings import PeerAddresses, ServiceSettings

MODULE_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
MAX_TASK_MODULES = 50


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
    bulk_max_jobs_per_call: int = Field(
        default=10_000, ge=1, le=100_000, description="Jobs one BulkJobAction by filter acts on at most."
    )
    search_max_words_per_job: int = Field(
        default=64, ge=1, le=256, description="Distinct payload (and error) words a job is indexed under."
    )
    job_log_max_lines: int = Field(default=1000, ge=1, le=100_000, description="ctx.log lines kept per job.")
    job_log_max_line_chars: int = Field(
        default=2000, ge=1, le=64 * 1024, description="A ctx.log line is cut to this many characters."
    )


class WorkerSettings(JobsSettings):
    peers: PeerAddresses = Field(default_factory=PeerAddresses)
    queues: str = Field(default=",".join(QUEUE_NAMES), description="Comma-separated queues to serve.")
    maintenance_interval_seconds: float = Field(default=1.0, gt=0, le=60)
    worker_task_modules: str = Field(
        default="",
        max_length=4096,
        description="Comma-separated modules of the team's own tasks to import, e.g. myapp.tasks.",
    )
    heartbeat_interval_seconds: float = Field(
        default=1.0, gt=0, le=10, description="The registry heartbeat; 3 missed and the worker is dead."
    )

    @field_validator("queues")
    @classmethod
    def _known_queues(cls, value: str) -> str:
        names = [name.strip() for name in value.split(",") if name.strip()]
        unknown = sorted(set(names) - set(QUEUE_NAMES))
        if not names or unknown:
            raise ValueError(f"unknown queue(s) {unknown}; use some of {', '.join(QUEUE_NAMES)}")
        return ",".join(names)

    @field_validator("worker_task_modules")
    @classmethod
    def _module_names(cls, value: str) -> str:
        names = [name.strip() for name in value.split(",") if name.strip()]
        bad = [name for name in names if not MODULE_NAME_PATTERN.match(name)]
        if bad:
            raise ValueError(f"not module name(s): {bad}; use dotted names such as myapp.tasks")
        if len(names) > MAX_TASK_MODULES:
            raise ValueError(f"{len(names)} modules; at most {MAX_TASK_MODULES}")
        return ",".join(names)

    @property
    def queue_list(self) -> list[str]:
        return self.queues.split(",")

    @property
    def task_module_list(self) -> list[str]:
        return self.worker_task_modules.split(",") if self.worker_task_modules else []
