"""A job worker as a real process (`python -m services.jobs.worker`), to run, kill or stop at will."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from devstack.processes import ManagedProcess
from devstack.services import REPO_ROOT


class WorkerProcess:
    def __init__(
        self,
        name: str,
        *,
        run_dir: Path,
        env: Mapping[str, str],
        queues: Sequence[str] = (),
    ) -> None:
        command = [sys.executable, "-m", "services.jobs.worker"]
        if queues:
            command += ["--queues", ",".join(queues)]
        self.process = ManagedProcess(
            name,
            command,
            log_path=run_dir / f"{name}.log",
            env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
            cwd=REPO_ROOT,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def worker_id_suffix(self) -> str:
        """How job records name this worker (`host:pid`)."""
        return f":{self.pid}"

    def start(self) -> None:
        self.process.start()

    def restart(self) -> None:
        self.process.start()

    def stop(self, timeout: float = 15.0) -> int | None:
        return self.process.stop(timeout)
