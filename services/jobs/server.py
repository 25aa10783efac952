"""Wires the jobs service."""

from __future__ import annotations

from collections.abc import Sequence

from services.jobs.servicer import JobsServicer
from services.jobs.settings import JobsSettings
from services.runtime.server import ServiceBinding, ServiceContext
from switchboard.jobs.v1 import jobs_pb2, jobs_pb2_grpc


async def build(settings: JobsSettings, context: ServiceContext) -> Sequence[ServiceBinding]:
    return [
        ServiceBinding.of(
            jobs_pb2.DESCRIPTOR.services_by_name["JobsService"],
            jobs_pb2_grpc.add_JobsServiceServicer_to_server,
            JobsServicer(),  # type: ignore[abstract]  # its RPCs answer UNIMPLEMENTED until built
        ),
    ]
