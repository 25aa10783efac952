"""The gateway's body sink: reads a too-large request body to its end, then answers 413.

Envoy's buffer filter answers 413 as soon as a body passes the route's limit and stops reading, so a
client that writes its whole body before it reads (Python's urllib) gets a connection reset instead of
the answer. Envoy routes a request whose Content-Length is over the route's limit here instead: this
plain HTTP/1.1 listener drains the body (bounded in size and time) and answers the same google.rpc.Status
JSON as the gateway's own 413, with `Connection: close`. Envoy names the limit in a request header.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass

logger = logging.getLogger(__name__)

MAX_DRAINED_BYTES = 64 * 1024 * 1024
"""The most the sink reads of one body; Envoy sends only bodies up to this size here."""
LIMIT_HEADER = "x-switchboard-body-limit"
"""The route's limit as text ("1 MiB 64 KiB"), added by Envoy on the sink's routes."""
MAX_HEAD_BYTES = 64 * 1024
READ_CHUNK_BYTES = 256 * 1024
MAX_VALUE_CHARS = 128


@dataclass(frozen=True)
class SinkLimits:
    """How much and how slowly a client may send before the sink gives up on it."""

    max_body_bytes: int = MAX_DRAINED_BYTES
    read_timeout_seconds: float = 30.0


def too_large_body(limit: str, request_id: str) -> bytes:
    """The 413's body: the shape of the gateway's local 413 (code 3, ErrorInfo REQUEST_TOO_LARGE)."""
    status = {
        "code": 3,
        "message": f"the request body is larger than this path's limit of {limit}; send a smaller body "
        "(split a batch into several requests)",
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "REQUEST_TOO_LARGE",
                "domain": "gateway.switchboard",
                "metadata": {
                    "limit": limit,
                    "detail": "request_payload_too_large",
                    "request_id": request_id,
                },
            }
        ],
    }
    return json.dumps(status).encode()


def parse_head(head: bytes) -> dict[str, str]:
    """The header fields of an HTTP/1.1 request head (lower-cased names); the request line is skipped."""
    lines = head.decode("latin-1").split("\r\n")[1:]
    fields = {}
    for line in lines:
        name, separator, value = line.partition(":")
        if separator:
            fields[name.strip().lower()] = value.strip()
    return fields


def response(status: str, body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode() + body


class BodySink:
    """One connection, one request: drain its body, answer 413, close."""

    def __init__(self, limits: SinkLimits) -> None:
        self._limits = limits

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            answer = await self._answer(reader)
            if answer is not None:
                writer.write(answer)
                await writer.drain()
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            logger.info("body sink: the client went away or was too slow")
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader) -> bytes | None:
        timeout = self._limits.read_timeout_seconds
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        fields = parse_head(head)
        limit = fields.get(LIMIT_HEADER, "the gateway's")[:MAX_VALUE_CHARS]
        request_id = fields.get("x-request-id", "")[:MAX_VALUE_CHARS]
        length_text = fields.get("content-length", "")
        if not length_text.isdigit():
            return response("400 Bad Request", b'{"code": 3, "message": "send a Content-Length"}')
        remaining = min(int(length_text), self._limits.max_body_bytes)
        while remaining > 0:
            chunk = await asyncio.wait_for(reader.read(min(remaining, READ_CHUNK_BYTES)), timeout)
            if not chunk:
                return None
            remaining -= len(chunk)
        return response("413 Payload Too Large", too_large_body(limit, request_id))


async def start_body_sink(host: str, port: int, limits: SinkLimits) -> asyncio.Server:
    """The sink listening on `host:port` (0: a free port)."""
    sink = BodySink(limits)
    return await asyncio.start_server(sink.handle, host, port, limit=MAX_HEAD_BYTES)
