"""A TCP proxy in front of Redis that can lose a reply: it forwards a command, lets Redis run it, and then
drops the connection before the reply reaches the client — the case where a client re-sends a command
that already took effect."""

from __future__ import annotations

import asyncio
import contextlib


class ReplyLosingProxy:
    def __init__(self, redis_port: int) -> None:
        self._redis_port = redis_port
        self._server: asyncio.Server | None = None
        self._lose_after: bytes | None = None
        self.lost = 0
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def lose_next_reply_to(self, marker: bytes) -> None:
        """The next command whose bytes contain `marker` runs in Redis, and its reply never arrives."""
        self._lose_after = marker

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self._redis_port)
        losing = asyncio.Event()

        async def downstream() -> None:
            while data := await upstream_reader.read(65536):
                if losing.is_set():
                    # Redis answered the command: it took effect. The client never hears of it.
                    self.lost += 1
                    client_writer.close()
                    return
                client_writer.write(data)
                await client_writer.drain()

        replies = asyncio.create_task(downstream())
        try:
            while data := await client_reader.read(65536):
                if self._lose_after is not None and self._lose_after in data:
                    self._lose_after = None
                    losing.set()
                upstream_writer.write(data)
                await upstream_writer.drain()
                if losing.is_set():
                    break
            await replies
        finally:
            replies.cancel()
            upstream_writer.close()
            client_writer.close()
            with contextlib.suppress(Exception):
                await client_writer.wait_closed()
