"""gRPC load from h2load, nghttp2's HTTP/2 load generator (C), for the service's own latency and capacity.

A Python gRPC client spends 0.2-0.4 ms of CPU per call, as much as the service it measures, and on a
2-core machine it takes the cores the service needs. h2load spends about 0.01 ms. It sends one fixed,
length-prefixed protobuf request as a gRPC POST, closed loop (each stream sends its next request when
the last one answered), for a given time, and logs every request's latency.

h2load reads HTTP status only, not gRPC's `grpc-status` trailer, so every run is checked against Redis:
the requests use a fixed-window rule of their own (one window a day, a billion allowed), and the
window's counter must have grown by exactly the number of answers h2load counted. An answer that did not
count a check (an error, an unknown rule) shows up as a failure.
"""

from __future__ import annotations

import asyncio
import resource
import shutil
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from google.protobuf.message import Message
from redis.asyncio import Redis

from switchboard.ratelimit.v1 import ratelimit_pb2, ratelimit_pb2_grpc

CHECK_METHOD = "/switchboard.ratelimit.v1.RateLimitService/CheckRateLimit"
COUNTING_RULE = "bench-count"
COUNTING_KEY = "h2load"
_A_DAY = 86_400_000


def available() -> bool:
    return shutil.which("h2load") is not None


def grpc_frame(message: Message) -> bytes:
    """A gRPC message on the wire: uncompressed flag, 4-byte big-endian length, the protobuf bytes."""
    payload = message.SerializeToString()
    return b"\x00" + struct.pack(">I", len(payload)) + payload


async def put_counting_rule(address: str, admin: Sequence[tuple[str, str]]) -> None:
    """The fixed-window rule whose counter tells how many checks the service really made."""
    async with grpc.aio.insecure_channel(address) as channel:
        rule = ratelimit_pb2.Rule(
            name=COUNTING_RULE, limit=1_000_000_000, algorithm=ratelimit_pb2.ALGORITHM_FIXED_WINDOW
        )
        rule.period.FromMilliseconds(_A_DAY)
        await ratelimit_pb2_grpc.RateLimitServiceStub(channel).PutRule(
            ratelimit_pb2.PutRuleRequest(name=COUNTING_RULE, rule=rule), metadata=tuple(admin), timeout=5
        )


async def counted_checks(redis: Redis, key_prefix: str) -> int:
    """Checks counted so far on the counting rule's key, over all its windows."""
    total = 0
    pattern = f"{key_prefix}:c:{COUNTING_RULE}:fixed_window:{COUNTING_KEY}:*"
    async for key in redis.scan_iter(match=pattern, count=1000):
        total += int(await redis.get(key) or 0)
    return total


@dataclass(frozen=True)
class H2loadRun:
    latencies_ms: list[float]
    answered: int
    """Requests that got an HTTP 2xx answer."""
    errors: int
    seconds: float
    cpu_seconds: float
    """h2load's own CPU time, all processes of the run together."""


async def h2load(
    addresses: Sequence[str],
    *,
    connections_each: int,
    seconds: float,
    work_dir: Path,
) -> H2loadRun:
    """One h2load per address, at the same time, each with `connections_each` connections of one stream."""
    body = work_dir / "check.bin"
    await asyncio.to_thread(_write_request, body)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    runs = await asyncio.gather(
        *(
            _one(address, body, connections_each, seconds, work_dir / f"h2load-{index}.log")
            for index, address in enumerate(addresses)
        )
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    latencies = [ms for run in runs for ms in run[0]]
    return H2loadRun(
        latencies_ms=latencies,
        answered=sum(run[1] for run in runs),
        errors=sum(run[2] for run in runs),
        seconds=max(run[3] for run in runs),
        cpu_seconds=(after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
    )


async def _one(
    address: str, body: Path, connections: int, seconds: float, log: Path
) -> tuple[list[float], int, int, float]:
    await asyncio.to_thread(log.unlink, missing_ok=True)
    process = await asyncio.create_subprocess_exec(
        "h2load",
        "--duration", f"{max(1, round(seconds * 1000))}ms",
        "--clients", str(connections),
        "--max-concurrent-streams", "1",
        "--threads", "1",
        "--data", str(body),
        "--header", "content-type: application/grpc",
        "--header", "te: trailers",
        "--log-file", str(log),
        f"http://{address}{CHECK_METHOD}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await process.communicate()
    text = output.decode(errors="replace")
    if process.returncode != 0:
        raise RuntimeError(f"h2load exited {process.returncode}:\n{text[-2000:]}")
    latencies, answered, errors = [], 0, 0
    for line in (await asyncio.to_thread(log.read_text)).splitlines():
        _, status, duration_us = line.split()
        if status.startswith("2"):
            answered += 1
            latencies.append(int(duration_us) / 1000)
        else:
            errors += 1
    return latencies, answered, errors, _duration(text, seconds)


def _write_request(body: Path) -> None:
    body.parent.mkdir(parents=True, exist_ok=True)
    body.write_bytes(grpc_frame(ratelimit_pb2.CheckRateLimitRequest(rule=COUNTING_RULE, key=COUNTING_KEY)))


def _duration(report: str, planned: float) -> float:
    """The measured time from h2load's `finished in 5.00s, ...` line."""
    for line in report.splitlines():
        if line.startswith("finished in "):
            value = line.removeprefix("finished in ").split(",", 1)[0].strip()
            if value.endswith("ms"):
                return float(value[:-2]) / 1000
            if value.endswith("s"):
                return float(value[:-1])
    return planned
