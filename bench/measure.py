"""What both systems are measured with, the same way: open-loop pacing, percentiles, and per-job costs.

Costs come from counters rather than profilers: the CPU time the kernel charged to a process
(`/proc/<pid>/stat`) and Redis's own `INFO cpu` and `INFO commandstats`, read before and after a phase.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from redis.asyncio import Redis

from devstack.services import REPO_ROOT
from services.runtime import event_loop

logger = logging.getLogger(__name__)

T = TypeVar("T")

# The scheduler starts this long after it is called, so the first sends are not late by setup work.
PACING_LEAD_SECONDS = 0.05


@dataclass(frozen=True)
class LatencySummary:
    count: int
    p50_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, samples_ms: Sequence[float]) -> LatencySummary:
        if not samples_ms:
            raise ValueError("no samples to summarise")
        ordered = sorted(samples_ms)
        return cls(
            count=len(ordered),
            p50_ms=percentile(ordered, 50),
            p99_ms=percentile(ordered, 99),
            max_ms=ordered[-1],
        )


def percentile(ordered: Sequence[float], q: float) -> float:
    """The nearest-rank percentile of already sorted values."""
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Sent(Generic[T]):
    """One call of a paced run: when it was sent (Unix seconds), how long it took, what it returned."""

    submitted_at: float
    call_ms: float
    value: T


@dataclass(frozen=True)
class PacedRun(Generic[T]):
    calls: list[Sent[T]]
    offered_rate: float
    achieved_rate: float
    max_lateness_ms: float
    """How far behind its plan the scheduler sent a call: large values mean the client, not the system
    under test, set the pace."""


async def send_paced(rate: float, count: int, send: Callable[[], Awaitable[T]]) -> PacedRun[T]:
    """Calls `send` `count` times at `rate` per second on a fixed schedule, without waiting for replies.

    Open loop: a slow reply delays nothing after it, so queueing in the system under test shows up in
    its latency instead of silently lowering the offered rate.
    """
    loop = asyncio.get_running_loop()

    async def timed() -> Sent[T]:
        submitted_at = time.time()
        started = time.perf_counter()
        value = await send()
        return Sent(submitted_at, (time.perf_counter() - started) * 1000, value)

    start = loop.time() + PACING_LEAD_SECONDS
    lateness = 0.0
    in_flight: list[asyncio.Task[Sent[T]]] = []
    for index in range(count):
        due = start + index / rate
        wait = due - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        lateness = max(lateness, loop.time() - due)
        in_flight.append(asyncio.create_task(timed()))
    calls = list(await asyncio.gather(*in_flight))
    span = calls[-1].submitted_at - calls[0].submitted_at if len(calls) > 1 else 0.0
    return PacedRun(
        calls=calls,
        offered_rate=rate,
        achieved_rate=(len(calls) - 1) / span if span > 0 else 0.0,
        max_lateness_ms=lateness * 1000,
    )


async def gather_bounded(count: int, concurrency: int, send: Callable[[int], Awaitable[T]]) -> list[T]:
    """`send(0)` … `send(count - 1)` with at most `concurrency` in flight, results in order."""
    slots = asyncio.Semaphore(concurrency)

    async def one(index: int) -> T:
        async with slots:
            return await send(index)

    return list(await asyncio.gather(*(one(index) for index in range(count))))


def process_cpu_seconds(pid: int) -> float:
    """User plus system CPU time the kernel has charged to process `pid` (10 ms resolution)."""
    # The command name in field 2 may hold spaces; the numeric fields start after its closing ')'.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    user_ticks, system_ticks = int(fields[11]), int(fields[12])
    return (user_ticks + system_ticks) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Counters:
    redis_cpu_seconds: float
    redis_calls: Mapping[str, int]
    process_cpu_seconds: Mapping[str, float]


@dataclass(frozen=True)
class Costs:
    """Per-job costs of one phase."""

    redis_cpu_us: float
    redis_calls: float
    redis_calls_by_command: Mapping[str, float]
    process_cpu_us: Mapping[str, float]


async def read_counters(redis: Redis, processes: Mapping[str, int]) -> Counters:
    cpu = await redis.info("cpu")
    commands = await redis.info("commandstats")
    return Counters(
        redis_cpu_seconds=float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]),
        redis_calls={name.removeprefix("cmdstat_"): int(stat["calls"]) for name, stat in commands.items()},
        process_cpu_seconds={name: process_cpu_seconds(pid) for name, pid in processes.items()},
    )


def costs_per_job(before: Counters, after: Counters, jobs: int) -> Costs:
    """Per-job differences; Redis counts the commands a Lua script runs as well as the script call."""
    by_command = {
        name: (calls - before.redis_calls.get(name, 0)) / jobs
        for name, calls in after.redis_calls.items()
        if calls != before.redis_calls.get(name, 0)
    }
    return Costs(
        redis_cpu_us=(after.redis_cpu_seconds - before.redis_cpu_seconds) / jobs * 1e6,
        redis_calls=sum(by_command.values()),
        redis_calls_by_command=dict(sorted(by_command.items(), key=lambda item: -item[1])),
        process_cpu_us={
            name: (after.process_cpu_seconds[name] - seconds) / jobs * 1e6
            for name, seconds in before.process_cpu_seconds.items()
        },
    )


@dataclass(frozen=True)
class DrainResult:
    jobs: int
    seconds: float
    costs: Costs

    @property
    def jobs_per_second(self) -> float:
        return self.jobs / self.seconds


@dataclass(frozen=True)
class SustainedResult:
    """Jobs submitted while the worker runs them, with retention on."""

    jobs: int
    seconds: float
    keep: int
    peak_completed: int
    settled_completed: int
    baseline_memory: int
    peak_memory: int
    settled_memory: int

    @property
    def jobs_per_second(self) -> float:
        return self.jobs / self.seconds


@dataclass(frozen=True)
class LatencyResult:
    offered_rate: float
    achieved_rate: float
    max_lateness_ms: float
    enqueue_to_start: LatencySummary
    enqueue_call: LatencySummary
    costs: Costs
    stages: Mapping[str, LatencySummary] = field(default_factory=dict)
    """Enqueue→start split where the system records when the job was created."""


async def wait_until(
    done: Callable[[], Awaitable[bool]], *, within: float, what: str, interval: float = 0.02
) -> float:
    """Polls `done()` every `interval` until it is true; → the Unix time it was first seen true."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await done():
            return time.time()
        await asyncio.sleep(interval)
    raise TimeoutError(f"{what}: not done within {within} s")


@dataclass(frozen=True)
class LoadSample:
    """CPU seconds since boot, all cores together: the machine's, stolen by the hypervisor, ours."""

    busy: float
    stolen: float
    total: float
    ours: float


@dataclass(frozen=True)
class Interference:
    """What else competed for the CPUs during a phase, as shares of all cores' time."""

    others: float
    """Processes other than the benchmark's own (on a shared machine: someone's tests)."""
    stolen: float
    """Time the hypervisor gave to other virtual machines."""

    def __str__(self) -> str:
        return f"others used {self.others:.0%} of the machine, the hypervisor stole {self.stolen:.0%}"


class LoadProbe:
    """How much of the machine went to anything but the benchmark's own processes.

    On a shared machine another workload skews every number here; the benchmark waits for a quiet
    machine before each phase and reports what competed with it during the phase.
    """

    def __init__(self, pids: Sequence[int]) -> None:
        self._pids = tuple(pids)

    def sample(self) -> LoadSample:
        fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        user, nice, system, idle, iowait, irq, softirq, steal = fields
        busy = user + nice + system + irq + softirq
        tick = os.sysconf("SC_CLK_TCK")
        return LoadSample(
            busy=busy / tick,
            stolen=steal / tick,
            total=(busy + idle + iowait + steal) / tick,
            ours=sum(process_cpu_seconds(pid) for pid in self._pids),
        )

    @staticmethod
    def between(before: LoadSample, after: LoadSample) -> Interference:
        elapsed = after.total - before.total
        if elapsed <= 0:
            return Interference(0.0, 0.0)
        others = (after.busy - before.busy) - (after.ours - before.ours)
        return Interference(max(0.0, others / elapsed), (after.stolen - before.stolen) / elapsed)

    async def wait_for_quiet(self, *, threshold: float, patience: float, window: float = 1.0) -> Interference:
        """Waits until others use at most `threshold` of the machine over `window` s, for up to
        `patience` s; → what was seen last (over `threshold` if it gave up)."""
        deadline = time.monotonic() + patience
        while True:
            before = self.sample()
            await asyncio.sleep(window)
            seen = self.between(before, self.sample())
            if seen.others + seen.stolen <= threshold or time.monotonic() >= deadline:
                return seen
            logger.info("%s; waiting for the machine to quiet down", seen)


def code_version() -> str:
    """The commit measured, and which files under services/ differed from it (work in progress counts)."""

    def git(*arguments: str) -> str:
        return subprocess.run(
            ["git", *arguments], cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=10
        ).stdout

    try:
        commit = git("rev-parse", "--short", "HEAD").strip()
        changed = git("status", "--porcelain", "--", "services").splitlines()
    except (OSError, subprocess.SubprocessError):
        return f"{REPO_ROOT} (not a git checkout)"
    if not changed:
        return f"commit {commit}, services/ unchanged"
    names = ", ".join(line[3:] for line in changed)
    return f"commit {commit} plus uncommitted changes in services/: {names}"


def add_quiet_options(parser: argparse.ArgumentParser, *, patience: float, attempts: int, unit: str) -> None:
    """The options that keep a measurement away from other load on a shared machine."""
    parser.add_argument(
        "--quiet-threshold",
        type=float,
        default=0.10,
        help=f"before each {unit}, wait until other processes and the hypervisor take at most this share "
        "of the machine (0.10)",
    )
    parser.add_argument(
        "--quiet-patience", type=float, default=patience, help=f"longest such wait, in s ({patience:g})"
    )
    parser.add_argument(
        "--phase-attempts",
        type=int,
        default=attempts,
        help=f"run a {unit} again when others took over the threshold during it, up to this many times "
        f"({attempts})",
    )


def run_in_scratch_folder(
    prefix: str, run: Callable[[Path], Coroutine[Any, Any, T]], *, logger: logging.Logger
) -> T | None:
    """Runs a benchmark on uvloop (as the services run) with a temporary folder for its processes' data
    and logs; on failure logs the error and the last lines of every process log, and returns None."""
    with tempfile.TemporaryDirectory(prefix=prefix) as folder:
        try:
            return event_loop.run(run(Path(folder)))
        except Exception:
            logger.exception("benchmark failed; the process logs in %s:", folder)
            for log in sorted(Path(folder).rglob("*.log")):
                logger.error(
                    "--- %s (last lines)\n%s", log.name, "\n".join(log.read_text().splitlines()[-20:])
                )
            return None
