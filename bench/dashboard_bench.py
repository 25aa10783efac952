"""The dashboard's own load on the services: 5 open dashboards against none.

An open page re-reads its live part every poll interval (DASHBOARD_POLL_INTERVAL_MS, 1 s by default); this
bench plays that part of the browser: 5 pollers, each asking the overview's live fragment through Envoy
every interval, as a logged in admin. It reports, per phase of equal length, the CPU the jobs service, the
admin service (which serves the dashboard) and Redis spent, Redis commands per second, and the pollers'
requests per second and latency. The gRPC calls per fragment are the overview's (ListQueues, ListWorkers:
2); the RPC rate is derived from the requests counted.
`python -m bench.dashboard_bench [--seconds 30] [--dashboards 5]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from redis.asyncio import Redis

from bench.measure import Counters, percentile, read_counters, run_in_scratch_folder
from devstack.ports import free_port
from devstack.redis import RedisServer
from devstack.stack import Stack
from services.access.credentials import basic_header
from services.admin.dashboard.settings import DashboardSettings

logger = logging.getLogger(__name__)

# What an open page does (DASHBOARD_POLL_INTERVAL_MS): its default, read from the setting itself.
POLL_SECONDS = DashboardSettings.model_fields["poll_interval_ms"].default / 1000
RPCS_PER_OVERVIEW_FRAGMENT = 2  # ListQueues + ListWorkers (services/admin/dashboard/views.py: overview)


@dataclass(frozen=True)
class Phase:
    name: str
    seconds: float
    requests: int
    failures: int
    latencies_ms: list[float]
    before: Counters
    after: Counters

    def cpu_percent(self, process: str) -> float:
        spent = self.after.process_cpu_seconds[process] - self.before.process_cpu_seconds[process]
        return 100 * spent / self.seconds

    def redis_cpu_percent(self) -> float:
        return 100 * (self.after.redis_cpu_seconds - self.before.redis_cpu_seconds) / self.seconds

    def redis_calls_per_second(self) -> float:
        calls = sum(self.after.redis_calls.values()) - sum(self.before.redis_calls.values())
        return calls / self.seconds


async def _poller(session: aiohttp.ClientSession, url: str, stop: float, latencies: list[float]) -> int:
    failures = 0
    while time.monotonic() < stop:
        started = time.monotonic()
        async with session.get(url, headers={"X-Dashboard-Live": "1"}) as response:
            await response.read()
            if response.status != 200:
                failures += 1
        latencies.append((time.monotonic() - started) * 1000)
        await asyncio.sleep(max(POLL_SECONDS - (time.monotonic() - started), 0))
    return failures


async def _phase(
    name: str, stack: Stack, redis: Redis, processes: dict[str, int], *, dashboards: int, seconds: float
) -> Phase:
    latencies: list[float] = []
    login = {"Authorization": basic_header(*stack.admin_auth)}
    before = await read_counters(redis, processes)
    started = time.monotonic()
    async with aiohttp.ClientSession(headers=login) as session:
        url = f"{stack.gateway_url}/api/bull-board/"
        stop = started + seconds
        if dashboards:
            failures = sum(
                await asyncio.gather(*(_poller(session, url, stop, latencies) for _ in range(dashboards)))
            )
        else:
            failures = 0
            await asyncio.sleep(seconds)
    elapsed = time.monotonic() - started
    after = await read_counters(redis, processes)
    return Phase(name, elapsed, len(latencies), failures, sorted(latencies), before, after)


async def run(run_dir: Path, *, seconds: float, dashboards: int) -> list[Phase]:
    redis_server = RedisServer(free_port(), run_dir / "redis")
    async with contextlib.AsyncExitStack() as exits:
        exits.push_async_callback(asyncio.to_thread, redis_server.stop)
        await asyncio.to_thread(redis_server.start)
        redis = Redis(host="127.0.0.1", port=redis_server.port)
        exits.push_async_callback(redis.aclose)
        stack = Stack(
            run_dir / "stack", redis_host="127.0.0.1", redis_port=redis_server.port, gateway_port=free_port()
        )
        exits.push_async_callback(asyncio.to_thread, stack.stop)
        await asyncio.to_thread(stack.start)
        processes = {name: stack.services[name].process.pid for name in ("jobs", "admin")}
        # Settle: the stack's start-up work is not the dashboard's.
        await asyncio.sleep(3)
        return [
            await _phase("no dashboard", stack, redis, processes, dashboards=0, seconds=seconds),
            await _phase(
                f"{dashboards} dashboards", stack, redis, processes, dashboards=dashboards, seconds=seconds
            ),
        ]


def report(phases: list[Phase]) -> str:
    lines = [
        "| phase | requests/s | derived RPCs/s | p50 / p99 ms | jobs CPU % | admin CPU % | Redis CPU % "
        "| Redis cmds/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for phase in phases:
        rate = phase.requests / phase.seconds
        latency = (
            f"{percentile(phase.latencies_ms, 50):.1f} / {percentile(phase.latencies_ms, 99):.1f}"
            if phase.latencies_ms
            else "—"
        )
        lines.append(
            f"| {phase.name} | {rate:.2f} | {rate * RPCS_PER_OVERVIEW_FRAGMENT:.2f} | {latency} | "
            f"{phase.cpu_percent('jobs'):.2f} | {phase.cpu_percent('admin'):.2f} | "
            f"{phase.redis_cpu_percent():.2f} | {phase.redis_calls_per_second():.1f} |"
        )
    failures = sum(p.failures for p in phases)
    lines.append(f"\n{failures} failed requests; {phases[-1].seconds:.0f} s per phase.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--dashboards", type=int, default=5)
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    phases = run_in_scratch_folder(
        "dashboard-bench",
        lambda run_dir: run(run_dir, seconds=arguments.seconds, dashboards=arguments.dashboards),
        logger=logger,
    )
    if phases is None:
        raise SystemExit(1)
    print(report(phases))  # noqa: T201 - the benchmark's output


if __name__ == "__main__":
    main()
