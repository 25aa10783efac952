"""`python -m devstack`, what `make run` runs: Redis if none answers, every service, Envoy, supervised.

A process of the stack that exits is restarted with backoff (`devstack.supervisor`) while the rest keep
running; only Ctrl-C or SIGTERM to the launcher stops everything: each child gets SIGTERM, then SIGKILL
after its grace.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import sys
import threading
from pathlib import Path

import redis

from devstack.bigquery_emulator import BigQueryEmulator
from devstack.processes import StartError
from devstack.redis import RedisServer
from devstack.services import REPO_ROOT
from devstack.stack import Stack
from devstack.supervisor import Supervised, Supervisor
from services.gateway.config import split_address
from services.gateway.settings import GatewaySettings
from services.runtime.logs import configure_logging
from services.runtime.settings import ConfigurationError, RedisSettings, load_settings
from services.warehouse import sample_dataset
from services.warehouse.backend import BigQueryBackend
from services.warehouse.settings import BackendKind, BigQueryBackendSettings

LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}

log = logging.getLogger("devstack")


def main() -> int:
    configure_logging("devstack", "INFO")
    try:
        redis_settings = load_settings(RedisSettings)
        gateway = load_settings(GatewaySettings)
        bigquery = load_settings(BigQueryBackendSettings)
    except ConfigurationError as error:
        log.error("%s", error)
        return 2

    run_dir = Path(os.environ.get("DEVSTACK_RUN_DIR", REPO_ROOT / ".run"))
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())

    own_redis = None
    if not _redis_answers(redis_settings):
        if redis_settings.host not in LOCAL_HOSTS:
            log.error(
                "Redis at %s does not answer; start it or point REDIS_HOST elsewhere", redis_settings.address
            )
            return 1
        own_redis = RedisServer(redis_settings.port, run_dir / "redis", appendonly=True)
        log.info("starting redis-server on :%s (data in %s)", redis_settings.port, own_redis.data_dir)
        own_redis.start()

    # Real BigQuery when GOOGLE_CLOUD_PROJECT alone is set, a given emulator when BIGQUERY_EMULATOR_HOST
    # is; otherwise an emulator of our own (data kept in the run dir), seeded with the sample dataset.
    emulator = None
    if bigquery.kind is BackendKind.NOT_CONFIGURED:
        try:
            emulator = _start_emulator(run_dir)
        except (StartError, RuntimeError, OSError) as error:
            log.error("%s", error)
            if own_redis:
                own_redis.stop()
            return 1
    bigquery_env = emulator.env if emulator else {}

    ports = {name: split_address(address)[1] for name, address in gateway.peers.by_service().items()}
    ports["reflection"] = split_address(gateway.reflection_address)[1]
    ports["body_sink"] = split_address(gateway.body_sink_address)[1]
    ports["dashboard"] = split_address(gateway.dashboard_address)[1]
    password, generated = _admin_password(run_dir)
    stack = Stack(
        run_dir / "logs",
        redis_host=redis_settings.host,
        redis_port=redis_settings.port,
        gateway_port=gateway.port,
        gateway_admin_port=gateway.admin_port,
        service_ports=ports,
        # BigQuery is configured here (an emulator of our own, or the one or the project given), so the
        # analytics events are exported to it, on the rate-limited queue.
        env={"SWITCHBOARD_ADMIN_PASSWORD": password, "ANALYTICS_EXPORT_ENABLED": "true", **bigquery_env},
    )
    try:
        stack.start()
    except StartError as error:
        log.error("%s", error)
        if emulator:
            emulator.stop()
        if own_redis:
            own_redis.stop()
        return 1

    _print_summary(stack, redis_settings, gateway, run_dir, password if generated else None)
    Supervisor(_supervised(stack, own_redis, emulator)).run(stop)
    log.info("stopping")
    stack.stop()
    if emulator:
        emulator.stop()
    if own_redis:
        own_redis.stop()
    log.info("stopped")
    return 0


def _start_emulator(run_dir: Path) -> BigQueryEmulator:
    """The BigQuery emulator of `make run`, its data kept in the run dir, seeded with the sample."""
    emulator = BigQueryEmulator(run_dir / "bigquery", persistent=True)
    log.info("starting the BigQuery emulator on %s (data in %s)", emulator.endpoint, emulator.data_dir)
    try:
        emulator.start()
        asyncio.run(_seed_sample(emulator))
    except BaseException:
        emulator.stop()
        raise
    return emulator


async def _seed_sample(emulator: BigQueryEmulator) -> None:
    backend = BigQueryBackend(
        BigQueryBackendSettings(
            google_cloud_project=emulator.project, bigquery_emulator_host=emulator.endpoint
        )
    )
    try:
        await sample_dataset.seed(backend)
    finally:
        backend.close()


def _supervised(
    stack: Stack, own_redis: RedisServer | None, emulator: BigQueryEmulator | None
) -> list[Supervised]:
    units = [Supervised(s.process, s.restart) for s in (*stack.services.values(), stack.reflection)]
    units += [Supervised(w.process, w.restart) for w in stack.workers]
    if stack.envoy is not None:
        units.append(Supervised(stack.envoy.process, stack.envoy.restart))
    if own_redis is not None:
        units.append(Supervised(own_redis.process, own_redis.launch))
    if emulator is not None:
        units.append(Supervised(emulator.process, emulator.launch))
    return units


def _redis_answers(settings: RedisSettings) -> bool:
    client = redis.Redis(
        host=settings.host,
        port=settings.port,
        password=settings.password.get_secret_value() if settings.password else None,
        socket_connect_timeout=0.5,
        socket_timeout=0.5,
    )
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


ADMIN_PASSWORD_FILE = "admin-password"  # noqa: S105 - a file name


def _admin_password(run_dir: Path) -> tuple[str, bool]:
    """SWITCHBOARD_ADMIN_PASSWORD if given; else the one kept in the run folder, made on the first run.
    → (password, whether it was just made)."""
    given = os.environ.get("SWITCHBOARD_ADMIN_PASSWORD")
    if given:
        return given, False
    kept = run_dir / ADMIN_PASSWORD_FILE
    if kept.is_file():
        return kept.read_text().strip(), False
    run_dir.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(18)
    descriptor = os.open(kept, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(password + "\n")
    return password, True


def _print_summary(
    stack: Stack,
    redis_settings: RedisSettings,
    gateway: GatewaySettings,
    run_dir: Path,
    new_password: str | None,
) -> None:
    if new_password is not None:
        kept = run_dir / ADMIN_PASSWORD_FILE
        admin = f"{stack.admin_user} / {new_password}  (made now, shown this once; kept in {kept})"
    elif os.environ.get("SWITCHBOARD_ADMIN_PASSWORD"):
        admin = f"{stack.admin_user} / the SWITCHBOARD_ADMIN_PASSWORD you set"
    else:
        admin = f"{stack.admin_user} / the password in {run_dir / ADMIN_PASSWORD_FILE}"
    lines = [
        "",
        "Switchboard is running.",
        f"  REST and gRPC gateway  http://localhost:{gateway.port}  (try /api/test-connection)",
        f"  Envoy admin            http://127.0.0.1:{gateway.admin_port}",
        f"  Redis                  {redis_settings.address}",
        f"  admin (HTTP Basic)     {admin}",
    ]
    lines += [f"  {name:<22} {s.address}  (gRPC, loopback only)" for name, s in stack.services.items()]
    lines += [f"  {'reflection':<22} {stack.reflection.address}  (gRPC reflection behind the gateway)"]
    sink = f"127.0.0.1:{stack.body_sink_port}"
    lines += [f"  {'body sink':<22} {sink}  (HTTP/1.1: drains bodies over the limit, then 413)"]
    bigquery = stack.services["bigquery"].process.env or {}
    if bigquery.get("BIGQUERY_EMULATOR_HOST"):
        lines += [
            f"  {'BigQuery emulator':<22} {bigquery['BIGQUERY_EMULATOR_HOST']}  "
            f"(project {bigquery.get('GOOGLE_CLOUD_PROJECT')}; sample table switchboard_sample.events)"
        ]
    lines += [f"  {'dashboard':<22} http://localhost:{gateway.port}/api/bull-board/  (admin login)"]
    lines += [f"  {'workers':<22} {len(stack.workers)} process(es), queues analytics, bigquery, ratelimit"]
    lines += [f"  logs                   {Path(stack.run_dir)}/", "Ctrl-C stops everything.", ""]
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
