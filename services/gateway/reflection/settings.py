"""The gateway helper's settings: where reflection and the body sink listen, the descriptor set."""

from __future__ import annotations

from pydantic import AliasChoices, Field

from services.runtime.settings import ServiceSettings


class ReflectionSettings(ServiceSettings):
    grpc_port: int = Field(default=50056, ge=0, le=65535, description="0 picks a free port.")
    descriptor_path: str = Field(
        default="gen/descriptor.binpb",
        validation_alias=AliasChoices("GATEWAY_DESCRIPTOR_PATH", "descriptor_path"),
        description="The descriptor set `make protos` writes (the one Envoy transcodes with).",
    )
    body_sink_port: int = Field(
        default=50057, ge=0, le=65535, description="The body sink's HTTP/1.1 port; 0 picks a free port."
    )
    body_sink_port_file: str | None = Field(
        default=None, description="Write the body sink's bound port here once it listens."
    )
    body_sink_read_timeout_seconds: float = Field(
        default=30.0, gt=0, le=300, description="The sink drops a client that sends nothing this long."
    )
