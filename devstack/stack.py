"""The whole stack on one machine: every service, job workers, Envoy in front (Redis is the caller's)."""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc

from devstack.envoy import EnvoyProcess
from devstack.services import REPO_ROOT, SERVICE_NAMES, ServiceProcess
from devstack.workers import WorkerProcess
from services.access.credentials import basic_header
from services.access.guard import SERVICE_KEY_HEADER
from services.gateway.config import render
from services.gateway.settings import GatewaySettings
from services.runtime.settings import PeerAddresses
from switchboard.jobs.v1 import jobs_pb2, jobs_pb2_grpc

logger = logging.getLogger(__name__)

DESCRIPTOR_PATH = REPO_ROOT / "gen" / "descriptor.binpb"
# The tasks every worker of the stack runs besides the diagnostics: BigQuery queries, analytics.
WORKER_TASK_MODULES = "services.bigquery.query_task,services.analytics.tasks"


class Stack:
    """Services on `service_ports` (0: any free port) and Envoy on `gateway_port`.

    Every service listens on 127.0.0.1 only. The admin password (`SWITCHBOARD_ADMIN_PASSWORD` in `env`
    or the environment) and the service key are generated when none is given: `admin_auth` holds them.
    """

    def __init__(
        self,
        run_dir: Path,
        *,
        redis_host: str,
        redis_port: int,
        gateway_port: int,
        gateway_admin_port: int = 0,
        service_ports: Mapping[str, int] | None = None,
        env: Mapping[str, str] | None = None,
        workers: int = 1,
    ) -> None:
        self.run_dir = run_dir
        self.gateway_port = gateway_port
        self._gateway_admin_port = gateway_admin_port
        ports = dict(service_ports or {})
        given = {**os.environ, **(env or {})}
        self.admin_user = given.get("SWITCHBOARD_ADMIN_USER") or "admin"
        self.admin_password = given.get("SWITCHBOARD_ADMIN_PASSWORD") or secrets.token_urlsafe(18)
        self.service_key = given.get("SWITCHBOARD_SERVICE_KEY") or secrets.token_hex(32)
        common_env = {
            "REDIS_HOST": redis_host,
            "REDIS_PORT": str(redis_port),
            "GRPC_HOST": "127.0.0.1",
            "SWITCHBOARD_ADMIN_USER": self.admin_user,
            "SWITCHBOARD_ADMIN_PASSWORD": self.admin_password,
            "SWITCHBOARD_SERVICE_KEY": self.service_key,
            **(env or {}),
        }
        self.services = {
            name: ServiceProcess(name, run_dir=run_dir, env=common_env, port=ports.get(name, 0))
            for name in SERVICE_NAMES
        }
        # The gateway's reflection service (grpcurl through :8080) reads only the descriptor set.
        # Its second listener, the body sink, has a port file of its own (written before the gRPC one).
        self._body_sink_port_file = run_dir / "gateway.body_sink.port"
        self.body_sink_port = ports.get("body_sink", 0)
        sink_env = {
            "BODY_SINK_PORT": str(self.body_sink_port),
            "BODY_SINK_PORT_FILE": str(self._body_sink_port_file),
        }
        self.reflection = ServiceProcess(
            "gateway.reflection",
            run_dir=run_dir,
            env={**common_env, **sink_env},
            port=ports.get("reflection", 0),
        )
        # The dashboard's HTTP server runs in the admin process, with a port file of its own.
        self._dashboard_port_file = run_dir / "admin.dashboard.port"
        self.dashboard_port = ports.get("dashboard", 0)
        self.services["admin"].process.env = {
            **(self.services["admin"].process.env or {}),
            "DASHBOARD_PORT": str(self.dashboard_port),
            "DASHBOARD_PORT_FILE": str(self._dashboard_port_file),
        }
        # Workers run the BigQuery and analytics tasks too, unless told otherwise.
        worker_env = {"WORKER_TASK_MODULES": WORKER_TASK_MODULES, **common_env}
        self.workers = [
            WorkerProcess(f"worker-{index}", run_dir=run_dir, env=worker_env) for index in range(workers)
        ]
        self.envoy: EnvoyProcess | None = None

    @property
    def peers(self) -> PeerAddresses:
        return PeerAddresses(**{f"{name}_address": s.address for name, s in self.services.items()})

    @property
    def admin_auth(self) -> tuple[str, str]:
        """For `requests`: `auth=stack.admin_auth`."""
        return (self.admin_user, self.admin_password)

    @property
    def admin_metadata(self) -> tuple[tuple[str, str], ...]:
        """For a gRPC call: `metadata=stack.admin_metadata`."""
        return (("authorization", basic_header(self.admin_user, self.admin_password)),)

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def start(self, timeout: float = 60.0) -> None:
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout: float) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._body_sink_port_file.unlink(missing_ok=True)
        self._dashboard_port_file.unlink(missing_ok=True)
        # analytics and bigquery submit jobs, so they start knowing where the jobs service is; the admin
        # service checks every sibling, so it starts last, knowing where they all are.
        submitters = ("analytics", "bigquery")
        siblings = [
            *(s for name, s in self.services.items() if name not in ("admin", *submitters)),
            self.reflection,
        ]
        for service in siblings:
            service.start()
        with ThreadPoolExecutor(len(siblings)) as pool:
            for future in [pool.submit(s.wait_ready, timeout) for s in siblings]:
                future.result()
        self.body_sink_port = int(self._body_sink_port_file.read_text())
        # A restarted reflection process listens where Envoy sends the bodies.
        reflection_env = self.reflection.process.env or {}
        self.reflection.process.env = {**reflection_env, "BODY_SINK_PORT": str(self.body_sink_port)}
        jobs_env = {"JOBS_ADDRESS": self.services["jobs"].address}
        for name in submitters:
            submitter = self.services[name]
            submitter.process.env = {**(submitter.process.env or {}), **jobs_env}
            submitter.start()
        with ThreadPoolExecutor(len(submitters)) as pool:
            for future in [pool.submit(self.services[name].wait_ready, timeout) for name in submitters]:
                future.result()
        admin = self.services["admin"]
        peer_env = {f"{name.upper()}_ADDRESS": address for name, address in self.peers.by_service().items()}
        admin.process.env = {**(admin.process.env or {}), **peer_env}
        admin.start()
        for worker in self.workers:
            # Workers read the throttled queue's rule from the rate-limit service.
            worker.process.env = {**(worker.process.env or {}), **peer_env}
            worker.start()
        admin.wait_ready(timeout)
        self.dashboard_port = int(self._dashboard_port_file.read_text())
        # A restarted admin process serves the dashboard where Envoy sends it.
        admin.process.env = {**(admin.process.env or {}), "DASHBOARD_PORT": str(self.dashboard_port)}
        self._wait_for_workers(timeout)

        config_path = self.run_dir / "envoy.yaml"
        config_path.write_text(render(self.gateway_settings()))
        self.envoy = EnvoyProcess(config_path, run_dir=self.run_dir)
        self.envoy.start(timeout)
        logger.info("stack ready", extra={"gateway": self.gateway_url})

    def _wait_for_workers(self, timeout: float) -> None:
        """Until the jobs service lists every worker started: SubmitJob accepts a task a worker brings
        (`bigquery.query`) only once it has seen that worker, so "ready" must mean that too."""
        if not self.workers:
            return
        suffixes = {worker.worker_id_suffix for worker in self.workers}
        metadata = ((SERVICE_KEY_HEADER, self.service_key),)
        with grpc.insecure_channel(self.services["jobs"].address) as channel:
            stub = jobs_pb2_grpc.JobsServiceStub(channel)

            def registered() -> bool | None:
                listed = stub.ListWorkers(jobs_pb2.ListWorkersRequest(), metadata=metadata, timeout=2)
                seen = {worker.id for worker in listed.workers}
                return all(any(id_.endswith(suffix) for id_ in seen) for suffix in suffixes) or None

            self.workers[0].process.wait_until(registered, timeout=timeout, what="the workers registered")

    def gateway_settings(self) -> GatewaySettings:
        return GatewaySettings(
            listen_address="127.0.0.1",
            port=self.gateway_port,
            admin_port=self._gateway_admin_port,
            descriptor_path=str(DESCRIPTOR_PATH),
            peers=self.peers,
            reflection_address=self.reflection.address,
            body_sink_address=f"127.0.0.1:{self.body_sink_port}",
            dashboard_address=f"127.0.0.1:{self.dashboard_port}",
        )

    def stop(self) -> None:
        """Envoy first (no new calls), then every service and worker, each gracefully."""
        if self.envoy is not None:
            self.envoy.stop()
        processes = [*self.services.values(), self.reflection, *self.workers]
        with ThreadPoolExecutor(len(processes)) as pool:
            list(pool.map(lambda p: p.stop(), processes))
