"""A task module for the crash test: the real `analytics.aggregate`, then, on a job's first delivery, its
worker killed with SIGKILL before the job could be recorded as finished (the window exactly-once is for)."""

from __future__ import annotations

import os
import signal
from typing import Any

from taskiq import TaskiqDepends

from services.analytics.tasks import aggregate
from services.jobs.catalog import task
from services.jobs.context import JobContext, current_job

CRASH_TASK = "test.analytics.aggregate_then_crash"


@task(queue="analytics", name=CRASH_TASK)
async def aggregate_then_crash(batch_id: str, job: JobContext = TaskiqDepends(current_job)) -> dict[str, Any]:
    result = await aggregate(batch_id)
    if job.deliveries == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return result
