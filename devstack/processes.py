"""Child processes that die with their parent, log to a file, and stop gracefully then forcibly."""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")

# `setpriv --pdeathsig` (util-linux, in every Debian) asks for SIGTERM when the parent thread ends, then
# execs the command: the child dies with its parent. It replaces a `preexec_fn` doing the same prctl,
# which forces a real fork(): grpc's fork handlers (pthread_atfork) then ran in the parent and could
# deadlock it for good (seen: a test run hung in __run_prefork_handlers). Without preexec_fn, subprocess
# spawns with vfork, which runs no fork handlers.
_SETPRIV = shutil.which("setpriv")


class StartError(RuntimeError):
    """A process did not become ready; the message carries the tail of its log."""


def _dying_with_parent(command: Sequence[str]) -> list[str]:
    return [_SETPRIV, "--pdeathsig", "TERM", "--", *command] if _SETPRIV else list(command)


class ManagedProcess:
    """One child process in its own session, its output in `log_path`."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.command = list(command)
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                _dying_with_parent(self.command),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
        logger.debug("started %s (pid %s): %s", self.name, self.pid, " ".join(self.command))

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def process(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise RuntimeError(f"{self.name} was never started")
        return self._process

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def signal(self, signum: int) -> None:
        if self.running:
            self.process.send_signal(signum)

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; the exit code, or None if it was never started."""
        if self._process is None:
            return None
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                logger.warning("%s did not stop within %s s, killing it", self.name, timeout)
                self._process.kill()
                self._process.wait()
        return self._process.returncode

    def kill(self) -> None:
        if self.running:
            self.process.kill()
            self.process.wait()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def wait_until(
        self, ready: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.02
    ) -> T:
        """Polls `ready()` until it returns a value; fails early, with the log, if the process exits."""
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if not self.running:
                raise StartError(
                    f"{self.name} exited with {self.process.returncode} before {what}:\n{self.log_tail()}"
                )
            try:
                value = ready()
            except Exception as error:  # not ready yet; keep the last reason for the report
                last_error = error
            else:
                if value is not None:
                    return value
            time.sleep(interval)
        raise StartError(
            f"{self.name}: no {what} within {timeout} s (last error: {last_error}):\n{self.log_tail()}"
        )
