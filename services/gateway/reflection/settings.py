"""The reflection service's settings: where it listens and which descriptor set it reads."""

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
