"""Prometheus metrics of the jobs service and its workers: outcomes, wait before start, run time, depth."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

SUBMITTED = Counter("switchboard_jobs_submitted_total", "Jobs accepted by SubmitJob.", ["queue"])
STARTED = Counter("switchboard_jobs_started_total", "Job attempts started by workers.", ["queue"])
FINISHED = Counter(
    "switchboard_jobs_finished_total",
    "Job attempts ended, by the state they left the job in.",
    ["queue", "outcome"],
)
RECLAIMED = Counter(
    "switchboard_jobs_reclaimed_total",
    "Jobs taken back from a worker that stopped responding, by what became of them.",
    ["queue", "outcome"],
)
WAIT_SECONDS = Histogram(
    "switchboard_job_wait_seconds",
    "From ready (submitted, due, or requeued) to started.",
    ["queue"],
    buckets=_LATENCY_BUCKETS,
)
RUN_SECONDS = Histogram(
    "switchboard_job_run_seconds", "Run time of one attempt.", ["queue", "outcome"], buckets=_LATENCY_BUCKETS
)

# Read from Redis by the jobs service every few seconds; the same figures from every replica (take `max`,
# not `sum`, across them). KEDA's Prometheus scaler reads waiting + delayed per queue from it.
QUEUE_JOBS = Gauge(
    "switchboard_queue_jobs", "Jobs in a queue now, by state (as of the last reading).", ["queue", "state"]
)


@functools.cache
def _child(metric: MetricWrapperBase, *labels: str) -> Any:
    """The child for `labels`, looked up once: `labels()` takes a lock, and this is on every job's path."""
    return metric.labels(*labels)


def observe_submitted(queue: str) -> None:
    _child(SUBMITTED, queue).inc()


def observe_started(queue: str, wait_seconds: float) -> None:
    _child(STARTED, queue).inc()
    _child(WAIT_SECONDS, queue).observe(max(wait_seconds, 0.0))


def observe_finished(queue: str, outcome: str, run_seconds: float) -> None:
    _child(FINISHED, queue, outcome).inc()
    _child(RUN_SECONDS, queue, outcome).observe(max(run_seconds, 0.0))


def observe_reclaimed(queue: str, requeued: int, dead_lettered: int) -> None:
    RECLAIMED.labels(queue, "requeued").inc(requeued)
    RECLAIMED.labels(queue, "dead_lettered").inc(dead_lettered)


def observe_queue_counts(queue: str, counts: Mapping[str, int]) -> None:
    for state, count in counts.items():
        _child(QUEUE_JOBS, queue, state).set(count)
