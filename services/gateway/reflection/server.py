"""Builds and runs the gateway helper: reflection (the descriptor set in a pool, served as v1alpha and
v1) and, on a second port, the body sink."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import OVERALL_HEALTH
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

from services.gateway.reflection.body_sink import SinkLimits, start_body_sink
from services.gateway.reflection.settings import ReflectionSettings
from services.runtime import event_loop
from services.runtime.logs import configure_logging
from services.runtime.settings import ConfigurationError, load_settings

logger = logging.getLogger(__name__)

V1_SERVICE_NAME = "grpc.reflection.v1.ServerReflection"
"""v1 is v1alpha on the wire under another package name: one servicer answers both."""
SERVED_PACKAGE_PREFIX = "switchboard."


def load_pool(descriptor_path: Path) -> tuple[descriptor_pool.DescriptorPool, list[str]]:
    """The descriptor set as a pool, and the names of the Switchboard services it describes."""
    try:
        files = descriptor_pb2.FileDescriptorSet.FromString(descriptor_path.read_bytes())
    except (OSError, ValueError) as error:
        raise ConfigurationError(f"cannot read the descriptor set {descriptor_path}: {error}") from None
    pool = descriptor_pool.DescriptorPool()
    services = []
    for file in files.file:  # --include_imports writes dependencies first
        pool.Add(file)
        services += [
            f"{file.package}.{service.name}"
            for service in file.service
            if file.package.startswith(SERVED_PACKAGE_PREFIX)
        ]
    if not services:
        raise ConfigurationError(f"{descriptor_path} describes no {SERVED_PACKAGE_PREFIX}* service")
    return pool, sorted(services)


class PoolReflectionServicer(reflection.aio.ReflectionServicer):  # type: ignore[misc]
    """grpcio-reflection's servicer over our pool, which also finds the file of a method
    (`describe switchboard.jobs.v1.JobsService.SubmitJob`): the pool itself knows only its services."""

    def _file_containing_symbol(
        self, request: reflection_pb2.ServerReflectionRequest, fully_qualified_name: str
    ) -> reflection_pb2.ServerReflectionResponse:
        answer: reflection_pb2.ServerReflectionResponse = super()._file_containing_symbol(
            request, fully_qualified_name
        )
        parent, _, method = fully_qualified_name.rpartition(".")
        if answer.HasField("error_response") and parent in self._service_names:
            service = self._pool.FindServiceByName(parent)
            if method in service.methods_by_name:
                answer = super()._file_containing_symbol(request, parent)
        return answer


def add_reflection(
    server: grpc.aio.Server, services: Sequence[str], pool: descriptor_pool.DescriptorPool
) -> None:
    servicer = PoolReflectionServicer([*services, reflection.SERVICE_NAME, V1_SERVICE_NAME], pool=pool)
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    v1 = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(V1_SERVICE_NAME, {"ServerReflectionInfo": v1}),)
    )


async def serve(settings: ReflectionSettings) -> None:
    pool, services = load_pool(Path(settings.descriptor_path))
    server = grpc.aio.server()
    add_reflection(server, services, pool)
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    port = server.add_insecure_port(f"{settings.grpc_host}:{settings.grpc_port}")
    if port == 0:
        raise ConfigurationError(f"cannot listen on {settings.grpc_host}:{settings.grpc_port}")
    sink = await start_body_sink(
        settings.grpc_host.strip("[]"),
        settings.body_sink_port,
        SinkLimits(read_timeout_seconds=settings.body_sink_read_timeout_seconds),
    )
    sink_port = sink.sockets[0].getsockname()[1]
    await server.start()
    await health.set(OVERALL_HEALTH, health_pb2.HealthCheckResponse.SERVING)
    # The sink's port first: a reader that sees the gRPC port file finds the sink's too.
    if settings.body_sink_port_file:
        _write_port_file(Path(settings.body_sink_port_file), sink_port)
    if settings.port_file:
        _write_port_file(Path(settings.port_file), port)
    logger.info("serving", extra={"port": port, "body_sink_port": sink_port, "services": services})

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await health.enter_graceful_shutdown()
    sink.close()
    await server.stop(settings.shutdown_grace_seconds)
    logger.info("stopped")


def _write_port_file(path: Path, port: int) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(str(port))
    temporary.replace(path)


def run() -> None:
    """The whole life of the process; exits 2 on bad configuration, 0 after a graceful stop."""
    try:
        settings = load_settings(ReflectionSettings)
    except ConfigurationError as error:
        print(f"reflection: {error}", file=sys.stderr)  # noqa: T201 - logging is not configured yet
        sys.exit(2)
    configure_logging("reflection", settings.log_level)
    try:
        event_loop.run(serve(settings))
    except ConfigurationError as error:
        logger.error("cannot start: %s", error)
        sys.exit(2)
