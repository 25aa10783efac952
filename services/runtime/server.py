"""gRPC server bootstrap: build, serve with health and reflection, stop gracefully on SIGTERM.

A service's `__main__` is one call: `run_service("admin", AdminSettings, build)`. `build` receives the
settings and a `ServiceContext` (the process's Redis client, an exit stack for what it opens) and
returns the `ServiceBinding`s to serve. Shutdown: SIGTERM or SIGINT turns every health status
NOT_SERVING, the server stops taking calls and finishes the ones in flight within the grace period,
then the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection
from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.access.audit import AuditLog
from services.access.credentials import AdminCredentials, CredentialsError
from services.access.guard import Guard
from services.access.keys import KeyCache, KeyStore
from services.access.settings import AccessSettings
from services.runtime import background, event_loop
from services.runtime.call_scope import with_call_scope
from services.runtime.health import HealthMonitor, Probe
from services.runtime.logs import configure_logging
from services.runtime.message_size import GRPC_MAX_MESSAGE_BYTES
from services.runtime.redis_mux import RedisMux
from services.runtime.redis_pool import create_redis
from services.runtime.settings import ConfigurationError, ServiceSettings, load_settings

logger = logging.getLogger(__name__)

# Bounded messages: a request larger than this is refused (RESOURCE_EXHAUSTED, by grpc itself) before it
# reaches a servicer. It is built on the gateway's largest body limit, so only direct callers can meet it.
MAX_MESSAGE_BYTES = GRPC_MAX_MESSAGE_BYTES
# A health name that is SERVING while the process runs, whatever its dependencies do: what a Kubernetes
# liveness probe asks (a Redis outage must make pods unready, not restart them all).
LIVENESS_SERVICE = "liveness"


@dataclass(frozen=True)
class ServiceBinding:
    """One gRPC service a process serves."""

    name: str
    """Full proto name, e.g. `switchboard.jobs.v1.JobsService` (for health and reflection)."""
    register: Callable[[grpc.aio.Server, float | None, Guard | None, AuditLog | None], None]
    """Adds the service to a server; each call is bounded by the deadline given, if any, and checked by
    the guard given, if any (admin RPCs recorded in the audit log)."""
    needs_redis: bool = True
    """False for a service that must keep answering while Redis is down: it stays SERVING when Redis
    fails."""
    redis_deadline: bool = True
    """Each call is bounded by `REDIS_CALL_DEADLINE_SECONDS` and answers UNAVAILABLE past it: right for a
    service whose calls do nothing slower than Redis. False for one whose calls wait on something else
    (BigQuery, its siblings) for longer; it bounds those waits itself."""

    @classmethod
    def of(
        cls,
        descriptor: ServiceDescriptor,
        add_to_server: Callable[[Any, grpc.aio.Server], None],
        servicer: object,
        *,
        needs_redis: bool = True,
        redis_deadline: bool | None = None,
    ) -> ServiceBinding:
        """Binds `servicer` with its generated `add_..._to_server` function and service descriptor; each
        of its RPCs runs in the call scope (request id, the caller's check, errors to status, the Redis
        deadline unless `redis_deadline` is False; by default, a service that needs Redis has it)."""
        return cls(
            name=descriptor.full_name,
            register=lambda server, deadline_seconds, guard, audit: add_to_server(
                with_call_scope(
                    servicer, descriptor, deadline_seconds=deadline_seconds, guard=guard, audit=audit
                ),
                server,
            ),
            needs_redis=needs_redis,
            redis_deadline=needs_redis if redis_deadline is None else redis_deadline,
        )


@dataclass
class ServiceContext:
    """What a service's `build` gets to wire its servicers with."""

    redis: Redis
    redis_mux: RedisMux
    """The shared connection for hot paths (scripts run per request); opened at its first command."""
    exit_stack: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)
    keys: KeyStore | None = None
    """The API keys (every process checks them; the admin service manages them)."""
    audit: AuditLog | None = None
    guard: Guard | None = None
    """The check every RPC of this process passes (the gateway's authorizer runs it too)."""
    dead_loops: dict[str, str] = field(default_factory=dict)
    """Background loops that died, and why: the service then reports NOT_SERVING."""

    def run_in_background(
        self, name: str, iteration: background.Iteration, *, interval_seconds: float
    ) -> asyncio.Task[None]:
        """Runs `iteration` every interval for the life of the service; one failed iteration is logged
        and the loop goes on; should the loop die, health goes NOT_SERVING and says why."""

        def died(loop_name: str, why: BaseException) -> None:
            self.dead_loops[loop_name] = f"{type(why).__name__}: {why}"

        task = background.start(
            name, background.run_every(name, iteration, interval_seconds=interval_seconds), on_death=died
        )
        self.exit_stack.callback(task.cancel)
        return task

    async def check_loops(self) -> None:
        """A health probe: fails while any background loop is dead."""
        if self.dead_loops:
            raise RuntimeError(
                "; ".join(f"background loop {n!r} died ({w})" for n, w in self.dead_loops.items())
            )


@dataclass
class RunningServer:
    server: grpc.aio.Server
    port: int
    health: HealthMonitor


async def start_server(
    bindings: Sequence[ServiceBinding],
    *,
    redis: Redis,
    host: str = "127.0.0.1",
    port: int = 0,
    health_interval_seconds: float = 1.0,
    redis_timeout_seconds: float = 1.0,
    redis_call_deadline_seconds: float = 1.0,
    extra_probes: Mapping[str, Probe] | None = None,
    guard: Guard | None = None,
    audit: AuditLog | None = None,
) -> RunningServer:
    """Starts a server with `bindings`, health and reflection; `port=0` picks a free port. Each call of a
    binding that needs Redis is bounded by `redis_call_deadline_seconds`. Every RPC is checked by `guard`
    (None: open, for tests of other concerns) and admin RPCs are recorded in `audit`."""
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
        ],
    )
    for binding in bindings:
        deadline = redis_call_deadline_seconds if binding.redis_deadline else None
        binding.register(server, deadline, guard, audit)
    health_servicer = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        [
            *(b.name for b in bindings),
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ],
        server,
    )
    bound_port = server.add_insecure_port(f"{host}:{port}")
    if bound_port == 0:
        raise ConfigurationError(f"cannot listen on {host}:{port}: address in use or not available")
    monitor = HealthMonitor(
        health_servicer,
        probes={"redis": redis.ping, **(extra_probes or {})},
        dependent_services=[b.name for b in bindings if b.needs_redis],
        independent_services=[*(b.name for b in bindings if not b.needs_redis), LIVENESS_SERVICE],
        interval_seconds=health_interval_seconds,
        probe_timeout_seconds=redis_timeout_seconds,
    )
    await monitor.check_once()
    await server.start()
    return RunningServer(server=server, port=bound_port, health=monitor)


SettingsT = TypeVar("SettingsT", bound=ServiceSettings)
Build = Callable[[SettingsT, ServiceContext], Awaitable[Sequence[ServiceBinding]]]


def run_service(name: str, settings_class: type[SettingsT], build: Build[SettingsT]) -> None:
    """The whole life of a service process; exits 2 on bad configuration, 0 after a graceful stop."""
    try:
        settings = load_settings(settings_class)
    except ConfigurationError as error:
        print(f"{name}: {error}", file=sys.stderr)  # noqa: T201 - logging is not configured yet
        sys.exit(2)
    configure_logging(name, settings.log_level)
    try:
        event_loop.run(_serve(name, settings, build))
    except ConfigurationError as error:
        logger.error("cannot start: %s", error)
        sys.exit(2)


async def _serve(name: str, settings: SettingsT, build: Build[SettingsT]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    # Named per process, so CLIENT LIST tells which pod holds which connections.
    client_name = f"switchboard-{name}:{socket.gethostname()}:{os.getpid()}"
    redis = create_redis(settings.redis, client_name=client_name)
    context = ServiceContext(
        redis=redis, redis_mux=RedisMux(settings.redis, client_name=f"{client_name}:mux")
    )
    async with context.exit_stack:
        context.exit_stack.push_async_callback(redis.aclose)
        context.exit_stack.push_async_callback(context.redis_mux.aclose)
        guard = await _open_access(settings.access, context)
        bindings = await build(settings, context)
        running = await start_server(
            bindings,
            redis=redis,
            host=settings.grpc_host,
            port=settings.grpc_port,
            health_interval_seconds=settings.health_check_interval_seconds,
            redis_timeout_seconds=settings.redis.timeout_seconds,
            redis_call_deadline_seconds=settings.redis.call_deadline_seconds,
            extra_probes={"background_loops": context.check_loops},
            guard=guard,
            audit=context.audit,
        )
        if settings.port_file:
            _write_atomically(Path(settings.port_file), str(running.port))
        logger.info(
            "serving",
            extra={
                "port": running.port,
                "services": [b.name for b in bindings],
                "redis": settings.redis.address,
                "pid": os.getpid(),
            },
        )
        event_loop.freeze_startup_objects()
        monitor_task = asyncio.create_task(running.health.run())
        await stop.wait()

        logger.info("shutting down", extra={"grace_seconds": settings.shutdown_grace_seconds})
        monitor_task.cancel()
        await running.health.enter_shutdown()
        await running.server.stop(settings.shutdown_grace_seconds)
        with contextlib.suppress(asyncio.CancelledError):
            await monitor_task
    logger.info("stopped")


async def _open_access(settings: AccessSettings, context: ServiceContext) -> Guard:
    """The process's guard: admin credentials, the key cache (kept fresh in the background), the service
    key; bad or weak credentials stop the process with what is required."""
    try:
        admin = AdminCredentials.from_config(
            user=settings.admin_user,
            password=settings.admin_password.get_secret_value() if settings.admin_password else None,
            htpasswd_file=settings.admin_htpasswd_file,
        )
        service_key = settings.service_key.get_secret_value() if settings.service_key else None
        keys = KeyStore(context.redis, prefix=settings.access_key_prefix)
        cache = KeyCache(keys, refresh_seconds=settings.keys_refresh_seconds)
        guard = Guard(
            admin=admin, keys=cache, service_key=service_key, require_api_keys=settings.require_api_keys
        )
    except (CredentialsError, ValueError) as error:
        raise ConfigurationError(str(error)) from None
    context.keys = keys
    context.guard = guard
    context.audit = AuditLog(context.redis, prefix=settings.access_key_prefix)
    try:
        await cache.refresh()
    except RedisError:
        logger.warning("API keys not loaded yet: Redis unreachable")
    task = asyncio.create_task(cache.keep_fresh(context.redis))
    context.exit_stack.callback(task.cancel)
    if not admin.configured:
        logger.warning("no admin credentials configured: admin RPCs accept only admin-scoped API keys")
    return guard


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    temporary.replace(path)
