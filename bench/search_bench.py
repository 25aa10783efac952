"""`python -m bench.search_bench`: how fast SearchJobs answers at 100,000 jobs in one queue.

One run starts a redis-server of its own (free port, temporary folder), fills one queue (`analytics`)
with `--jobs` jobs through the store's own scripts (submit; a fifth of them claimed and failed, so there
are error words and a FAILED state to filter on), then times each kind of search, first page of 50,
`--rounds` times, closed loop, through the store (Redis and the Python around it) and for some kinds also
through a real gRPC SearchJobs on a jobs service in this process. It prints a markdown table (p50, p99,
max, matches) and reads each kind against the 200 ms target. Progress goes to the log (stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import grpc

from bench.measure import LatencySummary, run_in_scratch_folder
from devstack.ports import free_port
from devstack.redis import RedisServer
from services.jobs.model import AttemptError, JobFilter, JobState
from services.jobs.server import build
from services.jobs.settings import JobsSettings
from services.jobs.store import ClaimedJob, JobStore
from services.runtime.redis_mux import RedisMux
from services.runtime.redis_pool import create_redis
from services.runtime.server import ServiceContext, start_server
from services.runtime.settings import RedisSettings
from switchboard.jobs.v1 import jobs_pb2, jobs_pb2_grpc

logger = logging.getLogger("bench.search_bench")

TARGET_MS = 200.0
QUEUE = "analytics"
PREFIX = "sbbench"
TASKS = ("report.daily", "report.weekly", "export.csv", "diagnostics.echo")
REGIONS = ("emea", "apac", "amer", "latam", "nordics", "dach", "benelux", "iberia", "anz", "india")
FAILED_SHARE = 5
"""One job in this many is claimed and failed."""
SEED_CONCURRENCY = 200


@dataclass(frozen=True)
class Kind:
    name: str
    query: JobFilter


def _payload(n: int, rng: random.Random) -> dict[str, object]:
    return {
        "customer": f"customer{rng.randrange(1000)}",
        "region": REGIONS[n % len(REGIONS)],
        "order": f"ord{n}",
        "note": " ".join(f"word{rng.randrange(5000)}" for _ in range(5)),
    }


async def _seed(store: JobStore, jobs: int) -> None:
    rng = random.Random(7)  # noqa: S311 - varied test data, not secrets
    started = time.monotonic()

    async def submit(n: int) -> None:
        await store.submit(
            queue=QUEUE, task=TASKS[n % len(TASKS)], payload=_payload(n, rng), message=b"{}",
            job_id=f"job{n}", max_attempts=1,
        )  # fmt: skip

    for start in range(0, jobs, SEED_CONCURRENCY):
        await asyncio.gather(*(submit(n) for n in range(start, min(start + SEED_CONCURRENCY, jobs))))
    logger.info("submitted %d jobs in %.1f s", jobs, time.monotonic() - started)

    async def fail_one(worker: int) -> None:
        claimed = await store.claim(f"bench:{worker}", QUEUE, 60_000, tasks=TASKS)
        if isinstance(claimed, ClaimedJob):
            message = f"upstream {rng.choice(('timeout', 'refused', 'reset'))} on shard{rng.randrange(50)}"
            await store.finish(
                claimed, error=AttemptError(type="UpstreamError", message=message, retryable=False)
            )

    failing = jobs // FAILED_SHARE
    for start in range(0, failing, SEED_CONCURRENCY):
        await asyncio.gather(*(fail_one(worker) for worker in range(min(SEED_CONCURRENCY, failing - start))))
    logger.info("failed %d of them; seeding took %.1f s", failing, time.monotonic() - started)


def _kinds(created_cut_ms: int) -> list[Kind]:
    queues = (QUEUE,)
    failed = frozenset({JobState.FAILED})
    waiting = frozenset({JobState.WAITING})
    return [
        Kind("job id (exact)", JobFilter(queues=queues, job_id="job54321")),
        Kind("task name (1 in 4 jobs)", JobFilter(queues=queues, task="export.csv")),
        Kind(
            "payload word, rare (customer, ~1 in 1000)",
            JobFilter(queues=queues, payload_words=("customer42",)),
        ),
        Kind("payload word, common (region, 1 in 10)", JobFilter(queues=queues, payload_words=("emea",))),
        Kind(
            "payload word, in every job ('customer')", JobFilter(queues=queues, payload_words=("customer",))
        ),
        Kind("two payload words", JobFilter(queues=queues, payload_words=("emea", "customer42"))),
        Kind("error word", JobFilter(queues=queues, error_words=("refused",))),
        Kind("error word + FAILED", JobFilter(queues=queues, error_words=("shard7",), states=failed)),
        Kind("state FAILED (1 in 5)", JobFilter(queues=queues, states=failed)),
        Kind("state WAITING (4 in 5)", JobFilter(queues=queues, states=waiting)),
        Kind("two states", JobFilter(queues=queues, states=failed | waiting)),
        Kind("everything, newest first", JobFilter(queues=queues)),
        Kind(
            "common word + created in the last tenth",
            JobFilter(queues=queues, payload_words=("emea",), created_after_ms=created_cut_ms),
        ),
        Kind(
            "all three queues, common word",
            JobFilter(queues=("analytics", "bigquery", "ratelimit"), payload_words=("emea",)),
        ),
    ]


async def _time(call: Callable[[], Awaitable[int]], rounds: int) -> tuple[LatencySummary, int]:
    await call()  # warm: the script loaded, connections open
    samples = []
    matches = 0
    for _ in range(rounds):
        started = time.perf_counter()
        matches = await call()
        samples.append((time.perf_counter() - started) * 1000)
    return LatencySummary.of(samples), matches


async def _run(folder: Path, jobs: int, rounds: int) -> list[tuple[str, LatencySummary, int]]:
    redis_server = RedisServer(free_port(), folder / "redis")
    redis_server.start()
    try:
        settings = RedisSettings(port=redis_server.port)
        redis = create_redis(settings)
        mux = RedisMux(settings)
        store = JobStore(redis, mux, prefix=PREFIX)
        await _seed(store, jobs)
        ends = await redis.zrange(store.queue_key(QUEUE, "all"), 0, -1, withscores=True)
        first, last = float(ends[0][1]), float(ends[-1][1])
        cut = int(first + (last - first) * 0.9)
        info = await redis.info("memory")
        logger.info("redis used memory: %.0f MB", int(info["used_memory"]) / 1e6)
        rows = []
        for kind in _kinds(cut):

            async def search(query: JobFilter = kind.query) -> int:
                _, _, total, _ = await store.search(query, page_size=50)
                return total

            summary, matches = await _time(search, rounds)
            rows.append((f"store: {kind.name}", summary, matches))
            logger.info(
                "%s: p50 %.2f ms p99 %.2f ms (%d matches)", kind.name, summary.p50_ms, summary.p99_ms, matches
            )
        rows += await _over_grpc(redis, mux, rounds)
        await redis.aclose()
        return rows
    finally:
        redis_server.stop()


async def _over_grpc(redis: object, mux: RedisMux, rounds: int) -> list[tuple[str, LatencySummary, int]]:
    settings = JobsSettings(jobs_key_prefix=PREFIX)
    context = ServiceContext(redis=redis, redis_mux=mux, exit_stack=contextlib.AsyncExitStack())  # type: ignore[arg-type]
    rows = []
    requests = {
        "gRPC SearchJobs: payload word, common": jobs_pb2.JobFilter(queue=QUEUE, payload_text="emea"),
        "gRPC SearchJobs: state WAITING": jobs_pb2.JobFilter(
            queue=QUEUE, states=[jobs_pb2.JOB_STATE_WAITING]
        ),
        "gRPC SearchJobs: error word, every queue": jobs_pb2.JobFilter(error_text="refused"),
    }
    async with context.exit_stack:
        running = await start_server(await build(settings, context), redis=redis)  # type: ignore[arg-type]
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = jobs_pb2_grpc.JobsServiceStub(channel)
            for name, query in requests.items():

                async def search(query: jobs_pb2.JobFilter = query) -> int:
                    reply = await stub.SearchJobs(jobs_pb2.SearchJobsRequest(filter=query, page_size=50))
                    return int(reply.total)

                summary, matches = await _time(search, rounds)
                rows.append((name, summary, matches))
        await running.server.stop(0)
    return rows


def _report(rows: list[tuple[str, LatencySummary, int]], jobs: int) -> str:
    lines = [
        f"SearchJobs at {jobs:,} jobs in one queue, first page of 50 (target: p99 <= {TARGET_MS:.0f} ms)",
        "",
        "| search | matches | p50 ms | p99 ms | max ms | target |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, summary, matches in rows:
        verdict = "met" if summary.p99_ms <= TARGET_MS else "MISSED"
        timings = f"{summary.p50_ms:.2f} | {summary.p99_ms:.2f} | {summary.max_ms:.2f}"
        lines.append(f"| {name} | {matches:,} | {timings} | {verdict} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=100_000, help="jobs in the queue (100,000)")
    parser.add_argument("--rounds", type=int, default=50, help="searches timed per kind (50)")
    options = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    rows = run_in_scratch_folder(
        "search-bench-", lambda folder: _run(folder, options.jobs, options.rounds), logger=logger
    )
    if rows is None:
        return 1
    sys.stdout.write(_report(rows, options.jobs) + "\n")
    return 0 if all(summary.p99_ms <= TARGET_MS for _, summary, _ in rows) else 2


if __name__ == "__main__":
    sys.exit(main())
