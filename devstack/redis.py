"""A `redis-server` of our own: a given port, data in a given folder, started and restarted at will."""

from __future__ import annotations

import signal
from pathlib import Path

import redis

from devstack.processes import ManagedProcess


class RedisServer:
    """Foreground `redis-server`; `appendonly` makes restarts keep every acknowledged write."""

    def __init__(self, port: int, data_dir: Path, *, appendonly: bool = False) -> None:
        self.port = port
        self.data_dir = data_dir
        self.appendonly = appendonly
        self.process = ManagedProcess(
            "redis",
            [
                "redis-server",
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self.data_dir),
                "--save", "",
                "--appendonly", "yes" if self.appendonly else "no",
                "--appendfsync", "always",
            ],
            log_path=self.data_dir / "redis.log",
        )  # fmt: skip

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        self.launch()
        self.process.wait_until(self.ping, timeout=timeout, what="PING answer")

    def launch(self) -> None:
        """Starts redis-server without waiting for it to answer."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process.start()

    def ping(self) -> bool | None:
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2, socket_timeout=0.5)
        try:
            return True if client.ping() else None
        finally:
            client.close()

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=2)

    def stop(self) -> None:
        self.process.stop()

    def kill(self) -> None:
        self.process.kill()

    def pause(self) -> None:
        """Stalls Redis (SIGSTOP): connections stay open and nothing answers, as on a hung server."""
        self._running_process().signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Lets a paused Redis go on (SIGCONT), with its memory and connections as they were."""
        self._running_process().signal(signal.SIGCONT)

    def _running_process(self) -> ManagedProcess:
        if not self.process.running:
            raise RuntimeError("this redis-server is not running")
        return self.process

    def restart(self) -> None:
        self.stop()
        self.start()
