"""Fixtures of the integration tier."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest


class BlackHole:
    """A TCP port that accepts connections and never answers: a sibling that hangs."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._accepted: list[socket.socket] = []
        self._changed = threading.Condition()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            with self._changed:
                self._accepted.append(connection)
                self._changed.notify_all()

    def wait_for_connections(self, count: int, timeout: float = 10.0) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._accepted) >= count, timeout):
                raise TimeoutError(f"{len(self._accepted)} of {count} connections within {timeout} s")

    def close(self) -> None:
        self._listener.close()
        for connection in self._accepted:
            connection.close()


@pytest.fixture
def black_hole() -> Iterator[BlackHole]:
    hole = BlackHole()
    yield hole
    hole.close()
