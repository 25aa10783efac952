"""`python -m bench.query_cache_bench`: what a RunQuery cache hit costs, and single flight under load.

One run starts a redis-server of its own (free port, temporary folder) and the whole stack on it (every
service, one job worker, the BigQuery emulator with the sample dataset, Envoy), then per round:
- warms one cache entry (one RunQuery of the README's query) and finds its key in Redis;
- a cache hit's latency through Envoy (`POST /api/query`, one client, closed loop) next to a direct Redis
  GET of the same entry from redis.asyncio (the floor: what any cache in front of BigQuery pays);
- RunQuery throughput on hits with `--clients` concurrent clients (keep-alive HTTP/1.1 through Envoy);
- single flight: `--misses` concurrent identical RunQuery calls of a query never run before; BigQuery
  jobs started, counted by the emulator's job list (must be 1), and how many calls got the rows.

It prints a markdown table per round and the medians over rounds. Progress goes to the log (stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery
from redis.asyncio import Redis

from bench.measure import (
    Interference,
    LatencySummary,
    LoadProbe,
    add_quiet_options,
    run_in_scratch_folder,
    wait_until,
)
from bench.ratelimit_bench import machine_facts
from bench.ratelimit_peers import BENCH_LIMIT, UNLIMITED_BACKSTOP, HttpConnection, put_gateway_rule
from devstack.bigquery_emulator import BigQueryEmulator
from devstack.ports import free_port
from devstack.redis import RedisServer
from devstack.stack import Stack
from services.warehouse import sample_dataset
from services.warehouse.backend import BigQueryBackend
from services.warehouse.settings import BigQueryBackendSettings

logger = logging.getLogger("bench.query_cache_bench")

README_QUERY = "SELECT name, COUNT(*) AS n FROM switchboard_sample.events GROUP BY name ORDER BY n DESC"
HIT_THROUGH_ENVOY = "RunQuery cache hit via Envoy (REST)"
REDIS_FLOOR = "Redis GET of the same entry (floor)"
HITS_LOADED = "RunQuery cache hits via Envoy, loaded"


@dataclass(frozen=True)
class Plan:
    seconds: float
    warm_up_seconds: float
    clients: int
    misses: int
    rounds: int
    quiet_threshold: float
    quiet_patience: float


@dataclass(frozen=True)
class Row:
    path: str
    clients: int
    latency: LatencySummary
    per_second: float
    interference: Interference


@dataclass(frozen=True)
class SingleFlightResult:
    calls: int
    with_rows: int
    from_cache: int
    bigquery_jobs: int
    seconds: float


@dataclass(frozen=True)
class Round:
    rows: list[Row]
    single_flight: SingleFlightResult


Call = Callable[[], Awaitable[None]]


class CallFailed(Exception):
    pass


async def closed_loop(calls: Sequence[Call], seconds: float) -> tuple[list[float], float]:
    """Each call sent again as soon as it answered, for `seconds`; → latencies (ms) and elapsed s."""
    samples: list[float] = []
    stop_at = time.perf_counter() + seconds

    async def client(call: Call) -> None:
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            await call()
            samples.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(client(call) for call in calls))
    return samples, time.perf_counter() - started


def run_query_call(connection: HttpConnection, body: bytes, *, want_cached: bool) -> Call:
    async def call() -> None:
        response = await connection.request("POST", "/api/query", body)
        if response.status != 200:
            raise CallFailed(f"POST /api/query: HTTP {response.status} {response.body[:300]!r}")
        if want_cached and not json.loads(response.body).get("cached"):
            raise CallFailed(f"not a cache hit: {response.body[:300]!r}")

    return call


def redis_get_call(redis: Redis, key: str) -> Call:
    async def call() -> None:
        if await redis.get(key) is None:
            raise CallFailed(f"{key} is not in Redis")

    return call


class Bench:
    def __init__(
        self,
        plan: Plan,
        gateway_port: int,
        redis: Redis,
        probe: LoadProbe,
        count_jobs: Callable[[str], int],
    ) -> None:
        self._plan = plan
        self._gateway_port = gateway_port
        self._redis = redis
        self._probe = probe
        self._count_jobs = count_jobs

    async def round(self, index: int) -> Round:
        body = json.dumps({"sql": README_QUERY}).encode()
        async with self._connections(1) as (warm,):
            await run_query_call(warm, body, want_cached=False)()
            await run_query_call(warm, body, want_cached=True)()
        keys = [key async for key in self._redis.scan_iter(match="sb:query:cache:*")]
        if len(keys) != 1:
            raise CallFailed(f"expected one cache entry, found {keys!r}")
        rows = []
        async with self._connections(1) as connections:
            rows.append(
                await self._measure(
                    HIT_THROUGH_ENVOY, [run_query_call(c, body, want_cached=True) for c in connections]
                )
            )
        rows.append(await self._measure(REDIS_FLOOR, [redis_get_call(self._redis, keys[0])]))
        async with self._connections(self._plan.clients) as connections:
            rows.append(
                await self._measure(
                    HITS_LOADED, [run_query_call(c, body, want_cached=True) for c in connections]
                )
            )
        return Round(rows=rows, single_flight=await self._single_flight(index))

    @contextlib.asynccontextmanager
    async def _connections(self, clients: int) -> AsyncIterator[list[HttpConnection]]:
        connections = [await HttpConnection.open("127.0.0.1", self._gateway_port) for _ in range(clients)]
        try:
            yield connections
        finally:
            for connection in connections:
                await connection.close()

    async def _measure(self, path: str, calls: Sequence[Call]) -> Row:
        await self._probe.wait_for_quiet(
            threshold=self._plan.quiet_threshold, patience=self._plan.quiet_patience
        )
        await closed_loop(calls, self._plan.warm_up_seconds)
        before = self._probe.sample()
        samples, elapsed = await closed_loop(calls, self._plan.seconds)
        interference = LoadProbe.between(before, self._probe.sample())
        row = Row(path, len(calls), LatencySummary.of(samples), len(samples) / elapsed, interference)
        logger.info(
            "%s, %d client(s): p50 %.3f ms, p99 %.3f ms, %.0f/s (%s)",
            path,
            row.clients,
            row.latency.p50_ms,
            row.latency.p99_ms,
            row.per_second,
            interference,
        )
        return row

    async def _single_flight(self, index: int) -> SingleFlightResult:
        """`--misses` identical calls of a query never run before, all at once."""
        mark = uuid.uuid4().hex
        sql = (
            f"SELECT name, COUNT(*) AS n, '{mark}' AS run FROM switchboard_sample.events "  # noqa: S608
            "GROUP BY name"
        )
        body = json.dumps({"sql": sql, "waitMs": 30_000}).encode()
        async with self._connections(self._plan.misses) as connections:
            started = time.perf_counter()
            answers = await asyncio.gather(
                *(connection.request("POST", "/api/query", body) for connection in connections)
            )
            elapsed = time.perf_counter() - started
        decoded = [json.loads(answer.body) if answer.status == 200 else {} for answer in answers]
        result = SingleFlightResult(
            calls=len(answers),
            with_rows=sum(1 for answer in decoded if answer.get("complete") and answer.get("rows")),
            from_cache=sum(1 for answer in decoded if answer.get("cached")),
            bigquery_jobs=await asyncio.to_thread(self._count_jobs, mark),
            seconds=elapsed,
        )
        logger.info("round %d single flight: %s", index, result)
        return result


def bigquery_jobs_with(emulator: BigQueryEmulator, mark: str) -> int:
    """BigQuery jobs the emulator ran whose SQL holds `mark`."""
    client = bigquery.Client(
        project=emulator.project,
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options=ClientOptions(api_endpoint=emulator.endpoint),
    )
    try:
        return sum(
            1
            for job in client.list_jobs(all_users=True, timeout=30)
            if mark in (getattr(job, "query", None) or "")
        )
    finally:
        client.close()  # type: ignore[no-untyped-call]


async def _seed(emulator: BigQueryEmulator) -> None:
    backend = BigQueryBackend(
        BigQueryBackendSettings(
            google_cloud_project=emulator.project, bigquery_emulator_host=emulator.endpoint
        )
    )
    try:
        await sample_dataset.seed(backend)
    finally:
        backend.close()


async def _query_worker_ready(gateway_port: int) -> bool:
    async with contextlib.AsyncExitStack() as exits:
        connection = await HttpConnection.open("127.0.0.1", gateway_port)
        exits.push_async_callback(connection.close)
        response = await connection.request("GET", "/api/workers")
        workers = json.loads(response.body).get("workers", []) if response.status == 200 else []
        return any("bigquery.query" in worker.get("tasks", []) for worker in workers)
    return False


async def run(plan: Plan, run_dir: Path) -> tuple[list[Round], str]:
    redis_server = RedisServer(free_port(), run_dir / "redis")
    async with contextlib.AsyncExitStack() as exits:
        exits.push_async_callback(asyncio.to_thread, redis_server.stop)
        await asyncio.to_thread(redis_server.start)
        redis = Redis(host="127.0.0.1", port=redis_server.port)
        exits.push_async_callback(redis.aclose)
        server_info = await redis.info("server")
        emulator = BigQueryEmulator(run_dir / "bigquery")
        exits.push_async_callback(asyncio.to_thread, emulator.stop)
        await asyncio.to_thread(emulator.start)
        await _seed(emulator)
        # The gateway's backstop and its per-client limit must not throttle the loaded phase.
        os.environ.update(UNLIMITED_BACKSTOP)
        stack = Stack(
            run_dir / "stack",
            redis_host="127.0.0.1",
            redis_port=redis_server.port,
            gateway_port=free_port(),
            env=emulator.env,
        )
        exits.push_async_callback(asyncio.to_thread, stack.stop)
        await asyncio.to_thread(stack.start)
        assert stack.envoy is not None
        await wait_until(
            lambda: _query_worker_ready(stack.gateway_port),
            within=30,
            what="a worker with the bigquery.query task",
        )
        admin = stack.admin_metadata
        for rule in ("api", "api-address"):
            await put_gateway_rule(
                stack.gateway_port, rule, {"limit": BENCH_LIMIT, "period": "1s"}, authorization=admin[0][1]
            )
        pids = [
            os.getpid(),
            int(server_info["process_id"]),
            stack.envoy.process.pid,
            *(service.process.pid for service in stack.services.values()),
            *(worker.process.pid for worker in stack.workers),
            emulator.process.pid,
        ]
        bench = Bench(
            plan, stack.gateway_port, redis, LoadProbe(pids), lambda mark: bigquery_jobs_with(emulator, mark)
        )
        rounds = []
        for index in range(plan.rounds):
            # Each round starts with an empty cache.
            async for key in redis.scan_iter(match="sb:query:*"):
                await redis.delete(key)
            rounds.append(await bench.round(index + 1))
        return rounds, str(server_info["redis_version"])


def render_round(number: int, round_: Round) -> str:
    lines = [
        f"Round {number}",
        "",
        "| path | clients | p50 ms | p99 ms | max ms | calls/s | others / stolen CPU |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for row in round_.rows:
        lines.append(
            f"| {row.path} | {row.clients} | {row.latency.p50_ms:.3f} | {row.latency.p99_ms:.3f} | "
            f"{row.latency.max_ms:.3f} | {row.per_second:,.0f} | "
            f"{row.interference.others:.0%} / {row.interference.stolen:.0%} |"
        )
    flight = round_.single_flight
    lines += [
        "",
        f"Single flight: {flight.calls} concurrent identical misses → {flight.bigquery_jobs} BigQuery "
        f"job(s) started (must be 1); {flight.with_rows} got the rows, {flight.from_cache} of them from the "
        f"cache; all answered in {flight.seconds:.2f} s.",
    ]
    return "\n".join(lines)


def render_medians(rounds: Sequence[Round]) -> str:
    lines = [
        f"Medians over {len(rounds)} round(s)",
        "",
        "| path | clients | p50 ms | p99 ms | calls/s |",
        "|---|---:|---:|---:|---:|",
    ]
    for position, row in enumerate(rounds[0].rows):
        same = [round_.rows[position] for round_ in rounds]
        lines.append(
            f"| {row.path} | {row.clients} | {statistics.median(r.latency.p50_ms for r in same):.3f} | "
            f"{statistics.median(r.latency.p99_ms for r in same):.3f} | "
            f"{statistics.median(r.per_second for r in same):,.0f} |"
        )
    jobs = [round_.single_flight.bigquery_jobs for round_ in rounds]
    verdict = "met" if all(count == 1 for count in jobs) else "MISSED"
    lines += ["", f"Single flight, BigQuery jobs per round: {jobs} (1 each: {verdict})."]
    return "\n".join(lines)


def parse_plan(argv: Sequence[str] | None = None) -> Plan:
    parser = argparse.ArgumentParser(
        prog="python -m bench.query_cache_bench", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each measurement (5)")
    parser.add_argument("--warm-up", type=float, default=1.0, help="warm-up before each measurement, s (1)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients of the loaded phase (16)")
    parser.add_argument("--misses", type=int, default=50, help="concurrent identical misses (50)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each from an empty cache (3)")
    add_quiet_options(parser, patience=20.0, attempts=1, unit="measurement")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 0.5 s measurements, one round")
    arguments = parser.parse_args(argv)
    if arguments.quick:
        arguments.seconds, arguments.warm_up, arguments.rounds = 0.5, 0.2, 1
        arguments.quiet_patience = 0.0
    if arguments.seconds <= 0 or arguments.warm_up < 0 or arguments.clients < 2 or arguments.rounds < 1:
        parser.error("--seconds must be positive, --warm-up not negative, --clients 2+, --rounds 1+")
    if not 2 <= arguments.misses <= 500:
        parser.error("--misses must be 2-500")
    return Plan(
        seconds=arguments.seconds,
        warm_up_seconds=arguments.warm_up,
        clients=arguments.clients,
        misses=arguments.misses,
        rounds=arguments.rounds,
        quiet_threshold=arguments.quiet_threshold,
        quiet_patience=arguments.quiet_patience,
    )


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="bench: %(message)s")
    plan = parse_plan(argv)
    logger.info("plan: %s", plan)
    outcome = run_in_scratch_folder(
        "switchboard-query-bench-", lambda folder: run(plan, folder), logger=logger
    )
    if outcome is None:
        return 1
    rounds, redis_version = outcome
    report = [
        f"Query cache benchmark: closed loop, {plan.seconds:g} s per path after a {plan.warm_up_seconds:g} s "
        f"warm-up, {plan.rounds} round(s), one fresh redis-server and the BigQuery emulator",
        "",
        *(render_round(number, round_) + "\n" for number, round_ in enumerate(rounds, start=1)),
        render_medians(rounds),
        "",
        machine_facts(redis_version),
        "",
    ]
    sys.stdout.write("\n".join(report))
    return 0 if all(round_.single_flight.bigquery_jobs == 1 for round_ in rounds) else 1


if __name__ == "__main__":
    sys.exit(main())
