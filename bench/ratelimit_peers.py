"""The paths the rate-limit benchmark measures, each as one awaitable check per client.

Every path is an async context manager that opens what its clients need (a Redis connection, a gRPC
channel, a keep-alive HTTP connection), yields one `Check` per client and closes them on exit. A check
raises `CheckFailed` when the answer is not an allowed check, so a throttled or failing path can never
pass for a fast one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from limits import RateLimitItemPerSecond
from limits.aio.storage import RedisStorage
from limits.aio.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter, RateLimiter
from redis.asyncio import Redis

from devstack.envoy import EnvoyProcess
from devstack.ports import free_port
from devstack.stack import Stack
from envoyrls.v3 import rls_pb2, rls_pb2_grpc
from services.gateway.config import render
from services.ratelimit.limiter import Limiter
from services.ratelimit.rules import Rule
from services.runtime.redis_mux import RedisMux
from services.runtime.settings import RedisSettings
from switchboard.ratelimit.v1 import ratelimit_pb2, ratelimit_pb2_grpc

Check = Callable[[], Awaitable[None]]

# So high that no check is ever denied: the benchmark measures the cost of a check, not throttling.
BENCH_LIMIT = 100_000_000
BACKSTOP_OFF = 1_000_000
"""The largest backstop the gateway takes, far over what one machine serves."""
UNLIMITED_BACKSTOP = {
    "GATEWAY_BACKSTOP_REQUESTS_PER_SECOND": str(BACKSTOP_OFF),
    "GATEWAY_BACKSTOP_CLIENT_REQUESTS_PER_SECOND": str(BACKSTOP_OFF),
}
"""The gateway's backstop out of the way of every path but the overload row that measures it."""
BENCH_RULE = Rule(name="bench", limit=BENCH_LIMIT, period_ms=1000)
GATEWAY_DOMAIN = "switchboard"
RATELIMIT_FILTER = "envoy.filters.http.ratelimit"
BACKSTOP_FILTER = "envoy.filters.http.local_ratelimit"
# Each client gets its own connection: grpc would otherwise share one subchannel across channels.
OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]


class CheckFailed(RuntimeError):
    """A check was denied or answered with an error."""


def client_key(index: int) -> str:
    return f"bench-client-{index}"


@contextlib.asynccontextmanager
async def evalsha_floor(redis_port: int, clients: int) -> AsyncIterator[list[Check]]:
    """One EVALSHA of a script that returns at once: a Python client's Redis round trip, nothing else."""
    connections = [Redis(host="127.0.0.1", port=redis_port) for _ in range(clients)]
    try:
        scripts = [connection.register_script("return 1") for connection in connections]

        def check_with(index: int) -> Check:
            async def check() -> None:
                if await scripts[index](keys=[client_key(index)]) != 1:
                    raise CheckFailed("the trivial script answered something else than 1")

            return check

        yield [check_with(index) for index in range(clients)]
    finally:
        for connection in connections:
            await connection.aclose()


@contextlib.asynccontextmanager
async def limits_library(redis_port: int, clients: int, *, moving_window: bool) -> AsyncIterator[list[Check]]:
    """The `limits` library's async Redis storage (redis-py client, like ours) with one strategy."""
    storage = RedisStorage(f"async+redis://127.0.0.1:{redis_port}", implementation="redispy")
    limiter: RateLimiter = (
        MovingWindowRateLimiter(storage) if moving_window else FixedWindowRateLimiter(storage)
    )
    item = RateLimitItemPerSecond(BENCH_LIMIT)
    try:
        await storage.reset()

        def check_with(index: int) -> Check:
            key = client_key(index)

            async def check() -> None:
                if not await limiter.hit(item, key):
                    raise CheckFailed("limits denied a check")

            return check

        yield [check_with(index) for index in range(clients)]
    finally:
        await storage.reset()


@contextlib.asynccontextmanager
async def limiter_in_process(redis_port: int, clients: int, *, prefix: str) -> AsyncIterator[list[Check]]:
    """Switchboard's `Limiter` as a library in this process, on the service's own kind of connection."""
    redis = RedisMux(RedisSettings(host="127.0.0.1", port=redis_port))
    limiter = Limiter(redis, prefix=prefix, timeout_seconds=1.0)
    try:

        def check_with(index: int) -> Check:
            key = client_key(index)

            async def check() -> None:
                if not (await limiter.decide(BENCH_RULE, key)).allowed:
                    raise CheckFailed("the limiter denied a check")

            return check

        yield [check_with(index) for index in range(clients)]
    finally:
        await redis.aclose()


@contextlib.asynccontextmanager
async def grpc_channels(address: str, clients: int) -> AsyncIterator[list[grpc.aio.Channel]]:
    channels = [grpc.aio.insecure_channel(address, options=OWN_CONNECTION) for _ in range(clients)]
    try:
        for channel in channels:
            await asyncio.wait_for(channel.channel_ready(), 10)
        yield channels
    finally:
        for channel in channels:
            await channel.close()


async def put_bench_rule(address: str, admin: Sequence[tuple[str, str]]) -> None:
    """The `bench` rule, through our gRPC API (GCRA, BENCH_LIMIT per second)."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = ratelimit_pb2_grpc.RateLimitServiceStub(channel)
        rule = ratelimit_pb2.Rule(
            name=BENCH_RULE.name,
            limit=BENCH_RULE.limit,
            algorithm=ratelimit_pb2.ALGORITHM_GCRA,
        )
        rule.period.FromMilliseconds(BENCH_RULE.period_ms)
        await stub.PutRule(
            ratelimit_pb2.PutRuleRequest(name=BENCH_RULE.name, rule=rule), metadata=tuple(admin), timeout=5
        )


@contextlib.asynccontextmanager
async def grpc_check_rate_limit(address: str, clients: int) -> AsyncIterator[list[Check]]:
    """Our API: `switchboard.ratelimit.v1.RateLimitService/CheckRateLimit`."""
    async with grpc_channels(address, clients) as channels:

        def check_with(index: int) -> Check:
            stub = ratelimit_pb2_grpc.RateLimitServiceStub(channels[index])
            request = ratelimit_pb2.CheckRateLimitRequest(rule=BENCH_RULE.name, key=client_key(index))

            async def check() -> None:
                response = await stub.CheckRateLimit(request, timeout=5)
                if not response.allowed:
                    raise CheckFailed("CheckRateLimit denied a check")

            return check

        yield [check_with(index) for index in range(clients)]


@contextlib.asynccontextmanager
async def envoy_should_rate_limit(address: str, clients: int) -> AsyncIterator[list[Check]]:
    """Envoy's protocol, called as Envoy calls it for an /api request (rule `api`, client by address)."""
    async with grpc_channels(address, clients) as channels:

        def check_with(index: int) -> Check:
            stub = rls_pb2_grpc.RateLimitServiceStub(channels[index])
            descriptor = rls_pb2.RateLimitDescriptor(
                entries=[
                    rls_pb2.RateLimitDescriptor.Entry(key="generic_key", value="api"),
                    rls_pb2.RateLimitDescriptor.Entry(key="remote_address", value="127.0.0.1"),
                ]
            )
            request = rls_pb2.RateLimitRequest(domain=GATEWAY_DOMAIN, descriptors=[descriptor])

            async def check() -> None:
                response = await stub.ShouldRateLimit(request, timeout=5)
                if response.overall_code != rls_pb2.RateLimitResponse.OK:
                    raise CheckFailed(f"ShouldRateLimit answered {response.overall_code}")
                if not response.statuses[0].HasField("current_limit"):
                    raise CheckFailed("ShouldRateLimit applied no rule: is the `api` rule missing?")

            return check

        yield [check_with(index) for index in range(clients)]


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: bytes


class HttpConnection:
    """A minimal keep-alive HTTP/1.1 client on asyncio streams: less client CPU per request than a
    general-purpose client, so the gateway's cost is what the latency shows."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> None:
        self._reader = reader
        self._writer = writer
        self._host = host

    @classmethod
    async def open(cls, host: str, port: int) -> HttpConnection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer, f"{host}:{port}")

    async def request(
        self, method: str, path: str, body: bytes | None = None, *, extra_headers: Sequence[str] = ()
    ) -> HttpResponse:
        head = [f"{method} {path} HTTP/1.1", f"Host: {self._host}", *extra_headers]
        if body is not None:
            head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        self._writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + (body or b""))
        await self._writer.drain()
        status_line, *header_lines = (await self._reader.readuntil(b"\r\n\r\n")).decode().split("\r\n")
        headers = {}
        for line in header_lines:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding") == "chunked":
            payload = await self._read_chunked()
        else:
            payload = await self._reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection") == "close":
            raise CheckFailed(f"the gateway closed the connection after {status_line}")
        return HttpResponse(int(status_line.split(" ", 2)[1]), headers, payload)

    async def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        while True:
            size = int((await self._reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunk = await self._reader.readexactly(size + 2)
            if size == 0:
                return b"".join(chunks)
            chunks.append(chunk[:-2])

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(ConnectionError):
            await self._writer.wait_closed()


@dataclass
class GatewayCounters:
    """What the REST calls saw of Envoy's rate limiting. An answer without X-RateLimit headers on a
    rate-limited route means the rate-limit service did not answer in time and Envoy let the request
    through anyway (it fails open): the call then looks cheaper than a limited one really is."""

    with_limit_headers: int = 0
    without_limit_headers: int = 0
    refused: int = 0
    """429 answers (the backstop's, or the rate-limit service's verdict)."""

    def reset(self) -> None:
        self.with_limit_headers = self.without_limit_headers = self.refused = 0

    def count(self, response: HttpResponse) -> None:
        if "x-ratelimit-limit" in response.headers:
            self.with_limit_headers += 1
        else:
            self.without_limit_headers += 1


@contextlib.asynccontextmanager
async def rest_calls(
    gateway_port: int,
    clients: int,
    *,
    method: str,
    path: str,
    body: dict[str, object] | None = None,
    counters: GatewayCounters,
) -> AsyncIterator[list[Check]]:
    """One keep-alive HTTP/1.1 connection per client through Envoy. A non-200 answer fails the call, and
    so does `"allowed": false` when the answer has that field (the check endpoint)."""
    encoded = None if body is None else json.dumps(body).encode()
    connections = [await HttpConnection.open("127.0.0.1", gateway_port) for _ in range(clients)]
    try:

        def check_with(connection: HttpConnection) -> Check:
            async def check() -> None:
                response = await connection.request(method, path, encoded)
                if response.status == 429:
                    counters.refused += 1
                if response.status != 200:
                    raise CheckFailed(f"{method} {path}: HTTP {response.status} {response.body[:200]!r}")
                counters.count(response)
                answer = json.loads(response.body)
                if answer.get("allowed", True) is not True:
                    raise CheckFailed(f"{method} {path} was not allowed: {answer}")

            return check

        yield [check_with(connection) for connection in connections]
    finally:
        for connection in connections:
            await connection.close()


async def put_gateway_rule(
    gateway_port: int, name: str, body: dict[str, object], *, authorization: str
) -> None:
    """PUT /api/rate-limits/{name} through the gateway (the REST face of PutRule)."""
    connection = await HttpConnection.open("127.0.0.1", gateway_port)
    try:
        response = await connection.request(
            "PUT",
            f"/api/rate-limits/{name}",
            json.dumps(body).encode(),
            extra_headers=(f"Authorization: {authorization}",),
        )
    finally:
        await connection.close()
    if response.status != 200:
        raise CheckFailed(f"PUT /api/rate-limits/{name}: HTTP {response.status} {response.body[:300]!r}")


def without_filter(config: str, name: str) -> str:
    """The rendered gateway config minus one HTTP filter (routes keep their descriptors, which nothing
    reads then)."""
    lines = config.splitlines(keepends=True)
    marker = f"- name: {name}"
    start = next((index for index, line in enumerate(lines) if line.strip() == marker), None)
    if start is None:
        raise ValueError(f"no {name} filter in the gateway config")
    indent = len(lines[start]) - len(lines[start].lstrip())
    end = start + 1
    while end < len(lines) and (
        not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip()) > indent
    ):
        end += 1
    # A comment right above the filter belongs to it.
    while start > 0 and lines[start - 1].strip().startswith("#"):
        start -= 1
    return "".join(lines[:start] + lines[end:])


def without_rate_limit_filter(config: str) -> str:
    """The same gateway with no rate limiting at all: no call to the rate-limit service per request, and
    no per-instance backstop."""
    return without_filter(without_filter(config, RATELIMIT_FILTER), BACKSTOP_FILTER)


def without_backstop(config: str) -> str:
    """The gateway as it was before the per-instance backstop: the rate-limit service's verdict only."""
    return without_filter(config, BACKSTOP_FILTER)


@dataclass(frozen=True)
class Gateway:
    port: int
    pid: int


def _start_envoy_variant(
    stack: Stack,
    run_dir: Path,
    name: str,
    transform: Callable[[str], str],
    settings_update: dict[str, object],
) -> tuple[EnvoyProcess, int]:
    port = free_port()
    settings = stack.gateway_settings().model_copy(update={**settings_update, "port": port, "admin_port": 0})
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path = run_dir / f"envoy-{name}.yaml"
    config_path.write_text(transform(render(settings)))
    envoy = EnvoyProcess(config_path, run_dir=run_dir)
    try:
        envoy.start()
    except BaseException:
        envoy.stop()
        raise
    return envoy, port


@contextlib.asynccontextmanager
async def gateway_variant(
    stack: Stack,
    run_dir: Path,
    name: str,
    transform: Callable[[str], str] = str,
    **settings_update: object,
) -> AsyncIterator[Gateway]:
    """Another Envoy in front of the same services: the gateway's settings with `settings_update`, its
    rendered config `transform`ed."""
    envoy, port = await asyncio.to_thread(
        _start_envoy_variant, stack, run_dir, name, transform, settings_update
    )
    try:
        yield Gateway(port=port, pid=envoy.process.pid)
    finally:
        await asyncio.to_thread(envoy.stop)


AUTHZ_FILTER = "envoy.filters.http.ext_authz"


def unchecked_gateway(stack: Stack, run_dir: Path) -> contextlib.AbstractAsyncContextManager[Gateway]:
    """The gateway without its access check (ext_authz): what the check costs per request."""
    return gateway_variant(stack, run_dir, "unchecked", lambda config: without_filter(config, AUTHZ_FILTER))


def unlimited_gateway(stack: Stack, run_dir: Path) -> contextlib.AbstractAsyncContextManager[Gateway]:
    """A second Envoy in front of the same services, without rate limiting."""
    return gateway_variant(stack, run_dir, "unlimited", without_rate_limit_filter)


def gateway_without_backstop(stack: Stack, run_dir: Path) -> contextlib.AbstractAsyncContextManager[Gateway]:
    """Rate limited by the service only, as the gateway was before its backstop."""
    return gateway_variant(stack, run_dir, "no-backstop", without_backstop)


def gateway_with_backstop(
    stack: Stack, run_dir: Path, requests_per_second: int
) -> contextlib.AbstractAsyncContextManager[Gateway]:
    """The gateway with its backstop at `requests_per_second` per route. Its per-client bucket stays out
    of the way: the benchmark's clients are one address, which that bucket alone would hold to its rate."""
    return gateway_variant(
        stack,
        run_dir,
        "backstop",
        backstop_requests_per_second=requests_per_second,
        backstop_client_requests_per_second=BACKSTOP_OFF,
    )
