"""The BigQuery emulator (`bqemulator`) as a real process, ready once `/healthz` answers.

It lives in a venv of its own (`.venv/bqemulator`, made by scripts/bootstrap): its pins (grpcio < 1.81,
protobuf < 7) cannot share the services' venv. It runs offline: DuckDB's spatial extension, which it would
otherwise download at start, is copied from the `duckdb-extension-spatial` package into the HOME it runs
with, and the format extensions it would also fetch are switched off.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import urllib.error
import urllib.request
from pathlib import Path

from devstack.ports import free_port
from devstack.processes import ManagedProcess

DUCKDB_VERSION = "v1.5.5"
DEFAULT_PROJECT = "switchboard-dev"
SAMPLE_DATASET = "switchboard_sample"  # services.warehouse.sample_dataset.DATASET
_PLATFORMS = {"x86_64": "linux_amd64", "aarch64": "linux_arm64"}


def emulator_venv() -> Path:
    """The emulator's venv, beside the running interpreter's (`$VENV/bqemulator`)."""
    return Path(os.environ.get("BQEMULATOR_VENV", Path(sys.prefix) / "bqemulator"))


def _spatial_extension(venv: Path) -> Path:
    found = sorted(
        venv.glob(f"lib/python*/site-packages/duckdb_extension_spatial/extensions/{DUCKDB_VERSION}/*")
    )
    if not found:
        raise FileNotFoundError(
            f"no DuckDB spatial extension in {venv}; "
            "run scripts/bootstrap (make setup) to install the emulator"
        )
    return found[0]


def install_spatial_extension(home: Path, venv: Path | None = None) -> Path:
    """Puts the spatial extension where DuckDB looks for it under `home`; does nothing if it is there."""
    source = _spatial_extension(venv or emulator_venv())
    machine = _PLATFORMS.get(platform.machine(), f"linux_{platform.machine()}")
    target = home / ".duckdb" / "extensions" / DUCKDB_VERSION / machine / source.name
    if not target.exists() or target.stat().st_size != source.stat().st_size:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    return target


class BigQueryEmulator:
    """`bqemulator start` on free ports, its HOME and data in `run_dir`; `persistent` keeps its data."""

    def __init__(
        self,
        run_dir: Path,
        *,
        project: str = DEFAULT_PROJECT,
        rest_port: int = 0,
        persistent: bool = False,
        name: str = "bigquery-emulator",
    ) -> None:
        self.run_dir = run_dir
        self.project = project
        self.rest_port = rest_port or free_port()
        self.grpc_port = free_port()
        self.home = run_dir / "home"
        self.data_dir = run_dir / "data"
        self.venv = emulator_venv()
        command = [
            str(self.venv / "bin" / "bqemulator"),
            "start",
            "--rest-host", "127.0.0.1",
            "--rest-port", str(self.rest_port),
            "--grpc-host", "127.0.0.1",
            "--grpc-port", str(self.grpc_port),
            "--project", project,
            "--log-level", "warning",
            "--log-format", "json",
        ]  # fmt: skip
        if persistent:
            command += ["--persistent", "--data-dir", str(self.data_dir)]
        else:
            command += ["--ephemeral"]
        self.process = ManagedProcess(
            name,
            command,
            log_path=run_dir / "bigquery-emulator.log",
            env={
                **os.environ,
                "HOME": str(self.home),
                "BQEMU_ENABLE_FORMAT_EXTENSIONS": "false",
                "PYTHONUNBUFFERED": "1",
            },
            cwd=run_dir,
        )

    @property
    def endpoint(self) -> str:
        """For BIGQUERY_EMULATOR_HOST: `http://127.0.0.1:<rest port>`."""
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def env(self) -> dict[str, str]:
        """What a service or worker needs to query this emulator, with the sample dataset as the
        default one (unqualified tables resolve there, and the guard allows it)."""
        return {
            "BIGQUERY_EMULATOR_HOST": self.endpoint,
            "GOOGLE_CLOUD_PROJECT": self.project,
            "BIGQUERY_DEFAULT_DATASET": SAMPLE_DATASET,
        }

    def start(self, timeout: float = 60.0) -> None:
        self.launch()
        self.wait_ready(timeout)

    def launch(self) -> None:
        """Starts the emulator without waiting for it (the supervisor's restart)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        install_spatial_extension(self.home, self.venv)
        self.process.start()

    def wait_ready(self, timeout: float = 60.0) -> None:
        self.process.wait_until(self.healthy, timeout=timeout, what="/healthz answer", interval=0.1)

    def healthy(self) -> bool | None:
        try:
            with urllib.request.urlopen(f"{self.endpoint}/healthz", timeout=1.0) as response:  # noqa: S310
                body = json.loads(response.read())
        except (urllib.error.URLError, OSError, ValueError):
            return None
        return True if body.get("status") == "ok" else None

    def stop(self, timeout: float = 10.0) -> int | None:
        return self.process.stop(timeout)
