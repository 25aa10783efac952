"""The body sink over a real socket: it reads the whole body before it answers, and gives up on a body
that is too large or too slow."""

from __future__ import annotations

import asyncio
import json

from services.gateway.reflection.body_sink import LIMIT_HEADER, SinkLimits, start_body_sink


async def _exchange(limits: SinkLimits, head: bytes, body: bytes) -> tuple[bytes, int]:
    """Sends `head` and `body` to a fresh sink; its answer and how much of `body` it took first."""
    server = await start_body_sink("127.0.0.1", 0, limits)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(head)
        sent = 0
        try:
            for start in range(0, len(body), 65536):
                writer.write(body[start : start + 65536])
                await writer.drain()
                sent = start + len(body[start : start + 65536])
        except ConnectionError:
            pass
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        return answer, sent
    finally:
        server.close()
        await server.wait_closed()


def _head(length: int, *extra: str) -> bytes:
    lines = ["POST /api/job HTTP/1.1", "host: gateway", f"content-length: {length}", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_the_whole_body_is_read_then_a_413_names_the_limit() -> None:
    body = b"x" * 5_000_000
    head = _head(len(body), f"{LIMIT_HEADER}: 1 MiB", "x-request-id: r-1")
    answer, sent = asyncio.run(_exchange(SinkLimits(), head, body))
    assert sent == len(body), "nothing was refused while the client still wrote"
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 413 Payload Too Large"
    headers, _, payload = rest.partition(b"\r\n\r\n")
    assert b"connection: close" in headers
    status = json.loads(payload)
    assert status["code"] == 3
    assert "limit of 1 MiB" in status["message"]
    assert status["details"][0]["metadata"] == {
        "limit": "1 MiB",
        "detail": "request_payload_too_large",
        "request_id": "r-1",
    }


def test_without_a_content_length_it_answers_400_at_once() -> None:
    head = b"POST /api/job HTTP/1.1\r\nhost: gateway\r\ntransfer-encoding: chunked\r\n\r\n"
    answer, _ = asyncio.run(_exchange(SinkLimits(), head, b""))
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b"Content-Length" in answer


def test_it_reads_no_more_than_its_bound() -> None:
    answer, _ = asyncio.run(_exchange(SinkLimits(max_body_bytes=1000), _head(10_000_000), b"x" * 1000))
    assert answer.startswith(b"HTTP/1.1 413 "), "answered after its bound, not after the declared length"


def test_a_client_that_stops_sending_is_dropped() -> None:
    limits = SinkLimits(read_timeout_seconds=0.2)
    answer, _ = asyncio.run(_exchange(limits, _head(1000), b"x" * 10))
    assert answer == b"", "closed without an answer"
