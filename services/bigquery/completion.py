"""The pub/sub channel on which the end of a `bigquery.query` job is announced, so waiters need not poll.

The query task publishes on `channel_for(job_id)` once the job's outcome is recorded (done, failed for
good, or cancelled); the message is the job id. A notice can be lost (pub/sub keeps nothing): a waiter
bounds its wait and reads the job's state itself.
"""

from __future__ import annotations

CHANNEL_PREFIX = "switchboard:bigquery:ended:"


def channel_for(job_id: str) -> str:
    """The channel announcing that job `job_id` ended."""
    return f"{CHANNEL_PREFIX}{job_id}"
