"""`python -m bench.analytics_bench`: events per second from POST /api/analytics to aggregates visible.

One run starts a redis-server of its own (free port, temporary folder) and the whole stack on it (every
service, `--workers` job workers with the analytics tasks, Envoy in front), then, per batch size (100 and
1,000 events), for `--rounds` rounds after a warm-up:
- `--clients` keep-alive HTTP/1.1 clients POST `--events` events through Envoy as fast as they are
  answered (closed loop), each batch with its own `batch_id`;
- a watcher polls the batches' applied markers (pipelined EXISTS every few ms): a batch is visible once its
  aggregation job counted it. Events/s is all events over the time from the first POST to the last batch
  visible; a batch's lag is from its POST being answered to it being seen counted;
- the floor: the same Redis writes (the batch kept, then its counts, HyperLogLogs, names and marker) from a
  bare pipelined redis.asyncio client, one pipeline per batch, `--clients` at once.

Before each phase it waits for a quiet machine and reports what else ran during it (LoadProbe). It prints a
markdown table of medians and reads them against the targets. Progress goes to the log (stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from redis.asyncio import Redis

from bench.measure import (
    Interference,
    LatencySummary,
    LoadProbe,
    add_quiet_options,
    code_version,
    run_in_scratch_folder,
    wait_until,
)
from bench.ratelimit_peers import HttpConnection
from devstack.ports import free_port
from devstack.redis import RedisServer
from devstack.stack import Stack
from services.analytics.aggregation import fold, script_argument
from services.analytics.events import Event
from services.analytics.keys import AnalyticsKeys
from services.analytics.store import encode_events
from services.analytics_retention import AnalyticsRetention

logger = logging.getLogger("bench.analytics_bench")
T = TypeVar("T")
Measured = Awaitable[tuple[float, "LatencySummary | None"]]

TARGET_EVENTS_PER_SECOND = 10_000.0
TARGET_LAG_P99_MS = 2000.0
TARGET_BATCH = 1000
KEY_PREFIX = "sb:analytics"
USERS = 1000


@dataclass(frozen=True)
class Plan:
    events: int
    batch_sizes: tuple[int, ...]
    clients: int
    workers: int
    rounds: int
    timeout: float
    quiet_threshold: float
    quiet_patience: float
    phase_attempts: int


@dataclass(frozen=True)
class Phase:
    events_per_second: float
    lag: LatencySummary | None
    others: Interference


@dataclass
class Results:
    end_to_end: dict[int, list[Phase]]
    floor: dict[int, list[Phase]]


def parse_plan(argv: Sequence[str] | None = None) -> Plan:
    parser = argparse.ArgumentParser(
        prog="python -m bench.analytics_bench", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--events", type=int, default=30_000, help="events per phase (default 30000)")
    parser.add_argument("--batch-sizes", default="100,1000", help="events per POST, comma-separated")
    parser.add_argument("--clients", type=int, default=4, help="concurrent HTTP clients (default 4)")
    parser.add_argument("--workers", type=int, default=1, help="job worker processes (default 1)")
    parser.add_argument("--rounds", type=int, default=3, help="repetitions, medians reported (default 3)")
    parser.add_argument("--timeout", type=float, default=120.0, help="longest wait for one phase, in s")
    add_quiet_options(parser, patience=30.0, attempts=2, unit="phase")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 3,000 events, 1 round")
    arguments = parser.parse_args(argv)
    if arguments.quick:
        arguments.events, arguments.rounds = 3000, 1
        arguments.quiet_patience, arguments.phase_attempts = min(arguments.quiet_patience, 5.0), 1
    sizes = tuple(int(size) for size in arguments.batch_sizes.split(",") if size.strip())
    if arguments.events < 1 or arguments.rounds < 1 or arguments.clients < 1 or not sizes or min(sizes) < 1:
        parser.error("--events, --rounds, --clients and the batch sizes must be at least 1")
    if max(sizes) > 1000:
        parser.error("a batch holds at most 1000 events (the service's limit)")
    return Plan(
        events=arguments.events,
        batch_sizes=sizes,
        clients=arguments.clients,
        workers=max(1, arguments.workers),
        rounds=arguments.rounds,
        timeout=arguments.timeout,
        quiet_threshold=arguments.quiet_threshold,
        quiet_patience=arguments.quiet_patience,
        phase_attempts=max(1, arguments.phase_attempts),
    )


def _batches(tag: str, plan: Plan, size: int) -> list[tuple[str, list[Event]]]:
    """The phase's batches: its own event name, users spread over USERS, stamped now."""
    now_ms = int(time.time() * 1000)
    count = max(1, plan.events // size)
    return [
        (
            f"{tag}-{b}",
            [
                Event(f"bench.{tag}", f"user-{(b * size + i) % USERS}", now_ms, {"i": i, "page": "/home"})
                for i in range(size)
            ],
        )
        for b in range(count)
    ]


def _body(batch_id: str, events: list[Event]) -> bytes:
    return json.dumps(
        {
            "batchId": batch_id,
            "events": [
                {
                    "name": e.name,
                    "userId": e.user_id,
                    "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(e.timestamp_ms / 1000))
                    + f".{e.timestamp_ms % 1000:03d}Z",
                    "properties": e.properties,
                }
                for e in events
            ],
        }
    ).encode()


async def _for_each(clients: int, items: Sequence[T], act: Callable[[int, T], Awaitable[None]]) -> None:
    """Runs `act` over `items` with `clients` workers, each taking the next item when done."""
    next_index = 0

    async def client(number: int) -> None:
        nonlocal next_index
        while next_index < len(items):
            item = items[next_index]
            next_index += 1
            await act(number, item)

    await asyncio.gather(*(client(number) for number in range(clients)))


async def end_to_end(
    stack: Stack, redis: Redis, plan: Plan, size: int, tag: str
) -> tuple[float, LatencySummary]:
    batches = _batches(tag, plan, size)
    bodies = [_body(batch_id, events) for batch_id, events in batches]
    keys = AnalyticsKeys(KEY_PREFIX)
    posted: dict[str, float] = {}
    seen: dict[str, float] = {}
    connections = [await HttpConnection.open("127.0.0.1", stack.gateway_port) for _ in range(plan.clients)]
    sending = True

    async def watch() -> None:
        while sending or len(seen) < len(batches):
            pending = [batch_id for batch_id in posted if batch_id not in seen]
            if pending:
                async with redis.pipeline(transaction=False) as pipe:
                    for batch_id in pending:
                        pipe.exists(keys.applied(batch_id))
                    found = await pipe.execute()
                now = time.monotonic()
                for batch_id, exists in zip(pending, found, strict=True):
                    if exists:
                        seen[batch_id] = now
            await asyncio.sleep(0.003)

    async def post(number: int, index: int) -> None:
        response = await connections[number].request("POST", "/api/analytics", bodies[index])
        if response.status != 200:
            raise RuntimeError(f"POST /api/analytics: HTTP {response.status} {response.body[:300]!r}")
        posted[batches[index][0]] = time.monotonic()

    watcher = asyncio.create_task(watch())
    started = time.monotonic()
    try:
        await _for_each(plan.clients, list(range(len(batches))), post)
        sending = False
        await asyncio.wait_for(asyncio.shield(watcher), timeout=plan.timeout)
    finally:
        sending = False
        watcher.cancel()
        for connection in connections:
            await connection.close()
    elapsed = max(seen.values()) - started
    lags = [(seen[batch_id] - posted[batch_id]) * 1000 for batch_id in posted]
    return len(batches) * size / elapsed, LatencySummary.of(lags)


async def floor(redis: Redis, plan: Plan, size: int, tag: str) -> float:
    """The same writes as ingest.lua + apply.lua, as plain commands: one pipeline per batch."""
    keys = AnalyticsKeys(f"{KEY_PREFIX}-floor")
    retention = AnalyticsRetention()
    prepared = []
    for batch_id, events in _batches(tag, plan, size):
        delta = json.loads(script_argument(fold(events), keys, retention))
        prepared.append((batch_id, encode_events(events), len(events), delta))

    async def write(_: int, item: tuple[str, str, int, dict[str, Any]]) -> None:
        batch_id, encoded, count, delta = item
        async with redis.pipeline(transaction=False) as pipe:
            pipe.hset(keys.batch(batch_id), mapping={"events": encoded, "count": count, "pending": 1})
            pipe.expire(keys.batch(batch_id), 600)
            for suffix, increment, expires in delta["c"]:
                pipe.incrby(keys.base + suffix, increment)
                pipe.expireat(keys.base + suffix, expires)
            for suffix, expires, users in delta["u"]:
                pipe.pfadd(keys.base + suffix, *users)
                pipe.expireat(keys.base + suffix, expires)
            for name, total, last in delta["n"]:
                pipe.hincrby(keys.totals, name, total)
                pipe.hset(keys.last_seen, name, last)
            pipe.set(keys.applied(batch_id), count, ex=600)
            pipe.delete(keys.batch(batch_id))
            await pipe.execute()

    started = time.monotonic()
    await _for_each(plan.clients, prepared, write)
    return len(prepared) * size / (time.monotonic() - started)


async def _quiet_phase(
    probe: LoadProbe,
    plan: Plan,
    name: str,
    measure: Callable[[int], Awaitable[tuple[float, LatencySummary | None]]],
) -> Phase:
    """Measures once the machine is quiet, again (up to phase_attempts) when others took over it."""
    phase: Phase | None = None
    for attempt in range(plan.phase_attempts):
        await probe.wait_for_quiet(threshold=plan.quiet_threshold, patience=plan.quiet_patience)
        before = probe.sample()
        rate, lag = await measure(attempt)
        others = LoadProbe.between(before, probe.sample())
        phase = Phase(rate, lag, others)
        lag_text = f", lag p50 {lag.p50_ms:.0f} ms p99 {lag.p99_ms:.0f} ms" if lag else ""
        logger.info("%s: %.0f events/s%s; %s", name, rate, lag_text, others)
        if others.others + others.stolen <= plan.quiet_threshold:
            break
    assert phase is not None
    return phase


# The bench is one ingesting client at far more calls per second than the default per-client rule (100/s)
# allows; a real one would hold an API key naming a rule of its own. The gateway still checks every call.
INGEST_CLIENT_RULES = [
    {"name": "api", "limit": 100_000, "period_ms": 1000, "burst": 100_000},
    {"name": "api-address", "limit": 100_000, "period_ms": 1000, "burst": 100_000},
]


async def run(plan: Plan, run_dir: Path) -> tuple[Results, str]:
    redis_dir = run_dir / "redis"
    redis_dir.mkdir()
    server = RedisServer(free_port(), redis_dir)
    server.start()
    stack = Stack(
        run_dir / "stack",
        redis_host="127.0.0.1",
        redis_port=server.port,
        gateway_port=free_port(),
        env={"LOG_LEVEL": "WARNING", "RATELIMIT_DEFAULT_RULES": json.dumps(INGEST_CLIENT_RULES)},
        workers=plan.workers,
    )
    redis = Redis(port=server.port)
    try:
        stack.start()
        version = str((await redis.info("server"))["redis_version"])

        probe_connection = await HttpConnection.open("127.0.0.1", stack.gateway_port)
        probe_body = _body("probe", [Event("bench.probe", "u", int(time.time() * 1000))])

        async def accepted() -> bool:
            # 503 until the jobs service has seen a worker register analytics.aggregate.
            return (await probe_connection.request("POST", "/api/analytics", probe_body)).status == 200

        try:
            await wait_until(
                accepted, within=60, what="the jobs service knows a worker of analytics.aggregate"
            )
        finally:
            await probe_connection.close()
        pids = [
            *(service.process.pid for service in stack.services.values()),
            *(worker.pid for worker in stack.workers),
            stack.reflection.process.pid,
            *([stack.envoy.process.pid] if stack.envoy else []),
        ]
        probe = LoadProbe(pids)
        results = Results(end_to_end={}, floor={})
        # Warm-up: imports, script loads, connections.
        await end_to_end(stack, redis, Plan(**{**plan.__dict__, "events": 2000}), 100, "warm")
        for size in plan.batch_sizes:
            for round_number in range(plan.rounds):
                tag = f"s{size}-r{round_number}"

                def through_gateway(attempt: int, tag: str = tag, size: int = size) -> Measured:
                    return _with_lag(end_to_end(stack, redis, plan, size, f"{tag}-a{attempt}"))

                def bare_redis(attempt: int, tag: str = tag, size: int = size) -> Measured:
                    return _rate_only(floor(redis, plan, size, f"{tag}-a{attempt}"))

                label = f"round {round_number + 1}, batches of {size}"
                results.end_to_end.setdefault(size, []).append(
                    await _quiet_phase(probe, plan, f"{label}, end to end", through_gateway)
                )
                results.floor.setdefault(size, []).append(
                    await _quiet_phase(probe, plan, f"{label}, floor", bare_redis)
                )
        return results, version
    finally:
        await redis.aclose()
        stack.stop()
        server.stop()


async def _with_lag(measured: Awaitable[tuple[float, LatencySummary]]) -> tuple[float, LatencySummary | None]:
    rate, lag = await measured
    return rate, lag


async def _rate_only(measured: Awaitable[float]) -> tuple[float, LatencySummary | None]:
    return await measured, None


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def render_table(results: Results, plan: Plan) -> str:
    rows = [
        "| Path | Batch | Events/s (median; runs) | Lag p50 | Lag p99 | Others' CPU (max) |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for size in plan.batch_sizes:
        for label, phases in (
            ("POST via Envoy → aggregates visible", results.end_to_end.get(size, [])),
            ("floor: same Redis writes, bare pipelined client", results.floor.get(size, [])),
        ):
            rates = [phase.events_per_second for phase in phases]
            lags = [phase.lag for phase in phases if phase.lag is not None]
            runs = ", ".join(f"{rate:,.0f}" for rate in rates)
            p50 = f"{_median([lag.p50_ms for lag in lags]):.0f} ms" if lags else "—"
            p99 = f"{_median([lag.p99_ms for lag in lags]):.0f} ms" if lags else "—"
            others = max((phase.others.others + phase.others.stolen for phase in phases), default=0.0)
            rows.append(
                f"| {label} | {size:,} | {_median(rates):,.0f} ({runs}) | {p50} | {p99} | {others:.0%} |"
            )
    return "\n".join(rows)


def render_verdict(results: Results) -> str:
    phases = results.end_to_end.get(TARGET_BATCH, [])
    if not phases:
        return f"Targets: not measured (no batches of {TARGET_BATCH})."
    rate = _median([phase.events_per_second for phase in phases])
    p99 = _median([phase.lag.p99_ms for phase in phases if phase.lag is not None])
    rate_ok = "met" if rate >= TARGET_EVENTS_PER_SECOND else "NOT met"
    lag_ok = "met" if p99 <= TARGET_LAG_P99_MS else "NOT met"
    return (
        f"Targets with batches of {TARGET_BATCH:,}: ≥ {TARGET_EVENTS_PER_SECOND:,.0f} events/s end to end: "
        f"{rate:,.0f}, {rate_ok}; lag p99 ≤ {TARGET_LAG_P99_MS:,.0f} ms: {p99:,.0f} ms, {lag_ok}."
    )


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="bench: %(message)s")
    plan = parse_plan(argv)
    logger.info("plan: %s", plan)
    code = code_version()
    outcome = run_in_scratch_folder(
        "switchboard-analytics-bench-", lambda folder: run(plan, folder), logger=logger
    )
    if outcome is None:
        return 1
    results, redis_version = outcome
    report = [
        f"Analytics benchmark: {plan.events:,} events per phase, {plan.clients} clients, {plan.workers} "
        f"worker(s), median of {plan.rounds} round(s)",
        "",
        render_table(results, plan),
        "",
        render_verdict(results),
        "",
        f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; code: {code}; "
        f"redis-server {redis_version}",
        "",
    ]
    sys.stdout.write("\n".join(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
