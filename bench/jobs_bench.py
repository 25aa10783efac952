"""`python -m bench.jobs_bench` (`make bench`): Switchboard's jobs service against raw taskiq, on one Redis.

One run starts a redis-server of its own (free port, temporary folder), then both systems on it, each with
one worker process running up to 100 jobs at once:
- Switchboard: the jobs gRPC service and a worker for the `analytics` queue, `diagnostics.echo` jobs
  submitted with `SubmitJob`;
- raw taskiq: taskiq-redis's stream broker and result backend, a no-op task, the same taskiq `Receiver`.

It measures how fast each drains a backlog of `--jobs` (jobs/s), and the enqueue→start latency at fixed
offered rates (open loop, `--seconds` each), `--rounds` times with the systems taking turns, and prints a
markdown table of the medians with the machine it ran on. Progress goes to the log (stderr).

On a shared machine it waits before each phase until other processes leave it nearly idle, runs a phase
again when they took over during it, and reports how much they took.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import os
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Protocol, TypeVar

from redis.asyncio import Redis

from bench.measure import (
    DrainResult,
    Interference,
    LatencyResult,
    LoadProbe,
    SustainedResult,
    add_quiet_options,
    code_version,
    run_in_scratch_folder,
)
from bench.raw_taskiq_peer import running_raw_taskiq
from bench.switchboard_peer import SwitchboardPeer, running_switchboard
from devstack.ports import free_port
from devstack.redis import RedisServer

logger = logging.getLogger("bench.jobs_bench")

T = TypeVar("T")

# The targets BENCHMARKS.md reads the numbers against.
TARGET_P99_MS = 5.0
TARGET_RATE = 500.0


class Peer(Protocol):
    name: str

    @property
    def processes(self) -> Mapping[str, int]:
        """Our processes behind this system, by role: CPU per job is read from them."""

    async def drain(self, jobs: int) -> DrainResult: ...

    async def paced(self, rate: float, seconds: float) -> LatencyResult: ...


@dataclass(frozen=True)
class Plan:
    jobs: int
    sustained_jobs: int
    keep: int
    seconds: float
    rates: tuple[float, ...]
    rounds: int
    timeout: float
    quiet_threshold: float
    quiet_patience: float
    phase_attempts: int


@dataclass
class PeerResults:
    drains: list[DrainResult] = field(default_factory=list)
    sustained: list[SustainedResult] = field(default_factory=list)
    latencies: dict[float, list[LatencyResult]] = field(default_factory=dict)
    interference: list[Interference] = field(default_factory=list)
    """Per measured phase, what else competed for the CPUs."""


def parse_plan(argv: Sequence[str] | None = None) -> Plan:
    parser = argparse.ArgumentParser(prog="python -m bench.jobs_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=5000, help="backlog size of the drain (default 5000)")
    parser.add_argument(
        "--sustained-jobs",
        type=int,
        default=30_000,
        help="jobs of the sustained run with retention on (default 30000; 0: skip)",
    )
    parser.add_argument("--keep", type=int, default=1000, help="its remove_on_complete.count (default 1000)")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each paced phase (default 5)")
    parser.add_argument("--rates", default="50,500", help="offered rates in jobs/s, comma-separated")
    parser.add_argument("--rounds", type=int, default=3, help="repetitions, medians reported (default 3)")
    parser.add_argument("--timeout", type=float, default=120.0, help="longest wait for one phase, in s")
    add_quiet_options(parser, patience=60.0, attempts=3, unit="phase")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 500 jobs, 1 s phases, 1 round")
    arguments = parser.parse_args(argv)
    if arguments.quick:
        arguments.jobs, arguments.seconds, arguments.rounds = 500, 1.0, 1
        arguments.sustained_jobs = min(arguments.sustained_jobs, 3000)
        arguments.quiet_patience, arguments.phase_attempts = min(arguments.quiet_patience, 5.0), 1
    rates = tuple(float(rate) for rate in arguments.rates.split(",") if rate.strip())
    if arguments.jobs < 1 or arguments.seconds <= 0 or arguments.rounds < 1 or not rates or min(rates) <= 0:
        parser.error("--jobs and --rounds must be at least 1, --seconds and --rates positive")
    return Plan(
        jobs=arguments.jobs,
        sustained_jobs=max(0, arguments.sustained_jobs),
        keep=max(1, arguments.keep),
        seconds=arguments.seconds,
        rates=rates,
        rounds=arguments.rounds,
        timeout=arguments.timeout,
        quiet_threshold=arguments.quiet_threshold,
        quiet_patience=arguments.quiet_patience,
        phase_attempts=max(1, arguments.phase_attempts),
    )


async def run(plan: Plan, run_dir: Path) -> tuple[dict[str, PeerResults], str]:
    """Both systems on one fresh Redis; → results per system and the Redis version."""
    redis_server = RedisServer(free_port(), run_dir / "redis")
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(asyncio.to_thread, redis_server.stop)
        redis_server.start()
        logger.info("redis-server on :%s (data in %s)", redis_server.port, redis_server.data_dir)
        redis = Redis(host="127.0.0.1", port=redis_server.port)
        stack.push_async_callback(redis.aclose)
        redis_version = str((await redis.info("server"))["redis_version"])
        peers: list[Peer] = [
            await stack.enter_async_context(
                running_switchboard(redis_server.port, run_dir, phase_timeout=plan.timeout)
            ),
            await stack.enter_async_context(
                running_raw_taskiq(redis_server.port, run_dir, phase_timeout=plan.timeout)
            ),
        ]
        redis_pid = int((await redis.info("server"))["process_id"])
        probe = LoadProbe(sorted({redis_pid, *(pid for peer in peers for pid in peer.processes.values())}))
        results = {peer.name: PeerResults() for peer in peers}
        for round_number in range(1, plan.rounds + 1):
            # Each phase runs on both systems back to back, their order alternating by round.
            order = peers if round_number % 2 else list(reversed(peers))
            for peer in order:
                drained, others = await _measured(probe, plan, functools.partial(peer.drain, plan.jobs))
                results[peer.name].drains.append(drained)
                results[peer.name].interference.append(others)
                _log_drain(round_number, peer.name, drained, others)
            if plan.sustained_jobs:
                switchboard = next(peer for peer in peers if isinstance(peer, SwitchboardPeer))
                sustained, others = await _measured(
                    probe, plan, functools.partial(switchboard.sustained, plan.sustained_jobs, plan.keep)
                )
                results[switchboard.name].sustained.append(sustained)
                logger.info(
                    "round %d: Switchboard sustained %d jobs with retention %d: %.0f jobs/s, completed peak "
                    "%d, settled %d, memory %.1f → %.1f → %.1f MB (%s)",
                    round_number, sustained.jobs, sustained.keep, sustained.jobs_per_second,
                    sustained.peak_completed, sustained.settled_completed, sustained.baseline_memory / 1e6,
                    sustained.peak_memory / 1e6, sustained.settled_memory / 1e6, others,
                )  # fmt: skip
            for rate in plan.rates:
                for peer in order:
                    paced, others = await _measured(
                        probe, plan, functools.partial(peer.paced, rate, plan.seconds)
                    )
                    results[peer.name].latencies.setdefault(rate, []).append(paced)
                    results[peer.name].interference.append(others)
                    _log_paced(round_number, peer.name, paced, others)
        return results, redis_version


async def _measured(
    probe: LoadProbe, plan: Plan, phase: Callable[[], Awaitable[T]]
) -> tuple[T, Interference]:
    """Runs `phase` once the machine is quiet, again if something else took over the machine meanwhile
    (up to `plan.phase_attempts` times); → its result and what competed with it."""
    attempt = 1
    while True:
        seen = await probe.wait_for_quiet(threshold=plan.quiet_threshold, patience=plan.quiet_patience)
        if seen.others + seen.stolen > plan.quiet_threshold:
            logger.warning("the machine is still busy (%s); measuring anyway", seen)
        before = probe.sample()
        result = await phase()
        during = LoadProbe.between(before, probe.sample())
        if during.others + during.stolen <= plan.quiet_threshold or attempt >= plan.phase_attempts:
            return result, during
        logger.warning("phase disturbed (%s); running it again", during)
        attempt += 1


def _log_drain(round_number: int, name: str, result: DrainResult, others: Interference) -> None:
    costs = result.costs
    logger.info(
        "round %s %s drain: %s jobs in %.2f s = %.0f jobs/s; per job: Redis %.0f µs CPU, %.1f commands %s; "
        "process CPU µs %s; %s",
        round_number, name, result.jobs, result.seconds, result.jobs_per_second, costs.redis_cpu_us,
        costs.redis_calls, _frequent(costs.redis_calls_by_command),
        {k: round(v) for k, v in costs.process_cpu_us.items()}, others,
    )  # fmt: skip


def _log_paced(round_number: int, name: str, result: LatencyResult, others: Interference) -> None:
    wait, call = result.enqueue_to_start, result.enqueue_call
    logger.info(
        "round %s %s at %g/s (achieved %.0f/s, scheduler late by ≤ %.1f ms): enqueue→start p50 %.2f p99 %.2f "
        "max %.2f ms; enqueue call p50 %.2f p99 %.2f ms; per job: Redis %.0f µs CPU, %.1f commands %s, "
        "process CPU µs %s; %s",
        round_number, name, result.offered_rate, result.achieved_rate, result.max_lateness_ms, wait.p50_ms,
        wait.p99_ms, wait.max_ms, call.p50_ms, call.p99_ms, result.costs.redis_cpu_us,
        result.costs.redis_calls, _frequent(result.costs.redis_calls_by_command),
        {k: round(v) for k, v in result.costs.process_cpu_us.items()}, others,
    )  # fmt: skip
    for stage, summary in result.stages.items():
        logger.info(
            "    %s: p50 %.2f p99 %.2f max %.2f ms", stage, summary.p50_ms, summary.p99_ms, summary.max_ms
        )


def _frequent(calls_per_job: Mapping[str, float]) -> dict[str, float]:
    """The Redis commands run at least once every 20 jobs, per job."""
    return {name: round(calls, 2) for name, calls in calls_per_job.items() if calls >= 0.05}


def _median(values: Sequence[float]) -> float:
    return statistics.median(values)


def _drain_cell(drains: Sequence[DrainResult]) -> str:
    rates = [drain.jobs_per_second for drain in drains]
    if len(rates) == 1:
        return f"{rates[0]:,.0f}"
    return f"{_median(rates):,.0f} ({min(rates):,.0f}-{max(rates):,.0f})"


def _latency_cell(results: Sequence[LatencyResult]) -> str:
    p50 = _median([r.enqueue_to_start.p50_ms for r in results])
    p99 = _median([r.enqueue_to_start.p99_ms for r in results])
    worst = max(r.enqueue_to_start.max_ms for r in results)
    return f"{p50:.1f} · {p99:.1f} · {worst:.1f}"


def _call_cell(results: Sequence[LatencyResult]) -> str:
    p50 = _median([r.enqueue_call.p50_ms for r in results])
    p99 = _median([r.enqueue_call.p99_ms for r in results])
    return f"{p50:.1f} · {p99:.1f}"


def _cost(drains: Sequence[DrainResult], pick: Callable[[DrainResult], float]) -> float:
    return _median([pick(drain) for drain in drains])


def render_table(results: Mapping[str, PeerResults], plan: Plan) -> str:
    switchboard, raw = results["Switchboard"], results["raw taskiq"]
    medians = {name: _median([d.jobs_per_second for d in r.drains]) for name, r in results.items()}
    rows = [
        "| Measure | Switchboard | raw taskiq | Switchboard / raw taskiq |",
        "|---|---|---|---|",
        f"| Drain of {plan.jobs:,} jobs, jobs/s (range) | {_drain_cell(switchboard.drains)} | "
        f"{_drain_cell(raw.drains)} | {medians['Switchboard'] / medians['raw taskiq']:.2f} |",
    ]
    for rate in plan.rates:
        rows.append(
            f"| Enqueue→start at {rate:g}/s, ms: p50 · p99 · max "
            f"| {_latency_cell(switchboard.latencies[rate])} | {_latency_cell(raw.latencies[rate])} | |"
        )
    for rate in plan.rates:
        rows.append(
            f"| Enqueue call at {rate:g}/s, ms: p50 · p99 | {_call_cell(switchboard.latencies[rate])} | "
            f"{_call_cell(raw.latencies[rate])} | |"
        )
    costs: list[tuple[str, Callable[[DrainResult], float], str]] = [
        ("Redis CPU per job in the drain, µs", lambda d: d.costs.redis_cpu_us, "{:.0f}"),
        (
            "Redis commands per job in the drain (scripts' inner ones too)",
            lambda d: d.costs.redis_calls,
            "{:.1f}",
        ),
        ("Worker CPU per job in the drain, µs", lambda d: d.costs.process_cpu_us["worker"], "{:.0f}"),
    ]
    for label, pick, style in costs:
        mine, theirs = _cost(switchboard.drains, pick), _cost(raw.drains, pick)
        ratio = f"{mine / theirs:.2f}" if theirs else ""
        rows.append(f"| {label} | {style.format(mine)} | {style.format(theirs)} | {ratio} |")
    for rate in plan.rates:
        mine = _median([_total_cpu_us(r) for r in switchboard.latencies[rate]])
        theirs = _median([_total_cpu_us(r) for r in raw.latencies[rate]])
        rows.append(
            f"| CPU per job at {rate:g}/s, all processes (Redis, service, worker, client), µs "
            f"| {mine:,.0f} | {theirs:,.0f} | {mine / theirs:.2f} |"
        )
    shares: list[tuple[str, Callable[[Interference], float]]] = [
        ("Other processes' CPU during a phase, max share of the machine", lambda i: i.others),
        ("CPU stolen by the hypervisor during a phase, max share", lambda i: i.stolen),
    ]
    for label, pick_share in shares:
        mine = max(pick_share(i) for i in switchboard.interference)
        theirs = max(pick_share(i) for i in raw.interference)
        rows.append(f"| {label} | {mine:.0%} | {theirs:.0%} | |")
    return "\n".join(rows)


def render_sustained(results: Mapping[str, PeerResults], plan: Plan) -> str:
    """Switchboard only (raw taskiq has no retention of finished jobs to keep up with); its floor is the
    same run's drain with retention out of the way."""
    runs = results["Switchboard"].sustained
    if not runs:
        return ""
    drain = _median([d.jobs_per_second for d in results["Switchboard"].drains])

    def cell(values: Sequence[float], style: str = "{:,.0f}") -> str:
        return f"{style.format(_median(values))} ({style.format(min(values))} to {style.format(max(values))})"

    throughput = [r.jobs_per_second for r in runs]
    megabytes = "{:.1f}"
    return "\n".join([
        f"Sustained: {plan.sustained_jobs:,} jobs submitted while one worker runs them, retention keeping "
        f"{plan.keep:,} completed (median (range) of {len(runs)} round(s))",
        "",
        "| Measure | Switchboard |",
        "|---|---|",
        f"| Throughput, submit to drained, jobs/s | {cell(throughput)}; "
        f"{_median(throughput) / drain:.2f} times the plain drain's {drain:,.0f} |",
        f"| Completed set, peak during the run | {cell([float(r.peak_completed) for r in runs])} |",
        f"| Completed set, 2 s after the drain | {cell([float(r.settled_completed) for r in runs])} |",
        f"| Redis used memory before, MB | {cell([r.baseline_memory / 1e6 for r in runs], megabytes)} |",
        f"| Redis used memory, peak, MB | {cell([r.peak_memory / 1e6 for r in runs], megabytes)} |",
        "| Redis used memory 2 s after the drain, MB "
        f"| {cell([r.settled_memory / 1e6 for r in runs], megabytes)} |",
    ])  # fmt: skip


def _total_cpu_us(result: LatencyResult) -> float:
    return result.costs.redis_cpu_us + sum(result.costs.process_cpu_us.values())


def render_verdict(results: Mapping[str, PeerResults]) -> str:
    switchboard, raw = results["Switchboard"], results["raw taskiq"]
    lines = []
    if TARGET_RATE in switchboard.latencies:
        p99 = _median([r.enqueue_to_start.p99_ms for r in switchboard.latencies[TARGET_RATE]])
        verdict = "met" if p99 <= TARGET_P99_MS else "MISSED"
        lines.append(
            f"- Target p99 enqueue→start ≤ {TARGET_P99_MS:g} ms at {TARGET_RATE:g} jobs/s: "
            f"{verdict} ({p99:.1f} ms)"
        )
    ours = _median([d.jobs_per_second for d in switchboard.drains])
    theirs = _median([d.jobs_per_second for d in raw.drains])
    verdict = "met" if ours >= theirs else "MISSED"
    lines.append(f"- Target drain throughput ≥ raw taskiq's: {verdict} ({ours:,.0f} vs {theirs:,.0f} jobs/s)")
    return "\n".join(lines)


def machine_facts(redis_version: str, code: str) -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown CPU",
    )
    packages = ", ".join(
        f"{name} {metadata.version(name)}" for name in ("taskiq", "taskiq-redis", "redis", "grpcio")
    )
    return (
        f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n"
        f"- Code: {code}\n"
        f"- Machine: {os.cpu_count()} cores (nproc), {model}, Linux {platform.release()}\n"
        f"- Python {platform.python_version()}, redis-server {redis_version}, {packages}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="bench: %(message)s")
    plan = parse_plan(argv)
    logger.info("plan: %s", plan)
    # The processes load the code as they start; a checkout that moves during the run is reported.
    code = code_version()
    outcome = run_in_scratch_folder("switchboard-bench-", lambda folder: run(plan, folder), logger=logger)
    if outcome is None:
        return 1
    results, redis_version = outcome
    if code_version() != code:
        code += f"; NOTE: the checkout changed during the run, it now reads: {code_version()}"
    report = [
        f"Jobs benchmark: {plan.jobs:,}-job drain, {plan.seconds:g} s per offered rate, "
        f"median of {plan.rounds} round(s)",
        "",
        render_table(results, plan),
        "",
        render_verdict(results),
        "",
        render_sustained(results, plan),
        "",
        machine_facts(redis_version, code),
        "",
    ]
    sys.stdout.write("\n".join(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
