"""A Switchboard service as a real process (`python -m services.<name>`), ready once its health answers."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from devstack.processes import ManagedProcess

SERVICE_NAMES = ("jobs", "ratelimit", "bigquery", "analytics", "admin")
REPO_ROOT = Path(__file__).resolve().parent.parent


class ServiceProcess:
    """One service process. `port=0` lets it pick a free port, learned from its port file."""

    def __init__(self, name: str, *, run_dir: Path, env: Mapping[str, str], port: int = 0) -> None:
        self.name = name
        self.run_dir = run_dir
        self._port_file = run_dir / f"{name}.port"
        self._requested_port = port
        self.port = port
        self.process = ManagedProcess(
            name,
            [sys.executable, "-m", f"services.{name}"],
            log_path=run_dir / f"{name}.log",
            env={
                **os.environ,
                # The admin's dashboard picks a free port unless told one (two test runs must not clash
                # on its default); the Stack and `make run` tell it.
                **({"DASHBOARD_PORT": "0"} if name == "admin" else {}),
                **env,
                "GRPC_PORT": str(port),
                "PORT_FILE": str(self._port_file),
                "PYTHONUNBUFFERED": "1",
            },
            cwd=REPO_ROOT,
        )

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self._port_file.unlink(missing_ok=True)
        self.process.start()

    def restart(self) -> None:
        """Starts the process again on the port it had, so that Envoy and its peers find it there."""
        if self.port:
            self.process.env = {**(self.process.env or {}), "GRPC_PORT": str(self.port)}
        self.start()

    def wait_ready(self, timeout: float = 30.0, *, serving: bool = True) -> None:
        """Waits for the port file, then for health to answer (SERVING, unless `serving` is False)."""
        self.port = self.process.wait_until(self._read_port, timeout=timeout, what="port file")
        want = {health_pb2.HealthCheckResponse.SERVING} if serving else None
        self.process.wait_until(lambda: self.health(accept=want), timeout=timeout, what="health answer")

    def health(self, service: str = "", *, accept: set[int] | None = None) -> int | None:
        """The health status of `service` (numeric); None when it is not in `accept`."""
        with grpc.insecure_channel(self.address) as channel:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=1.0
            )
        status: int = response.status
        return status if accept is None or status in accept else None

    def stop(self, timeout: float = 15.0) -> int | None:
        return self.process.stop(timeout)

    def _read_port(self) -> int | None:
        try:
            text = self._port_file.read_text().strip()
        except FileNotFoundError:
            return None
        return int(text) if text else None
