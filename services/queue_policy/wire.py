"""A queue policy as the jobs API's `QueuePolicy` message: the one translation, shared by the servicers
that answer with policies (the jobs service's ListQueues, the admin service's GetSettings)."""

from __future__ import annotations

from google.protobuf import duration_pb2

from services.queue_policy import BackoffType, QueuePolicy, Retention
from switchboard.jobs.v1 import jobs_pb2


def policy_to_proto(policy: QueuePolicy) -> jobs_pb2.QueuePolicy:
    return jobs_pb2.QueuePolicy(
        max_attempts=policy.max_attempts,
        backoff=jobs_pb2.BackoffPolicy(
            type=jobs_pb2.BACKOFF_TYPE_FIXED
            if policy.backoff.type is BackoffType.FIXED
            else jobs_pb2.BACKOFF_TYPE_EXPONENTIAL,
            base_delay=_duration(policy.backoff.base_delay_ms),
            max_delay=_duration(policy.backoff.max_delay_ms),
            jitter=policy.backoff.jitter,
        ),
        timeout=_duration(policy.timeout_ms),
        concurrency=policy.concurrency,
        lease_timeout=_duration(policy.lease_ms),
        max_deliveries=policy.max_deliveries,
        remove_on_complete=_retention(policy.remove_on_complete),
        remove_on_fail=_retention(policy.remove_on_fail),
        rate_limit_rule=policy.rate_limit_rule,
    )


def _retention(retention: Retention) -> jobs_pb2.RetentionPolicy:
    return jobs_pb2.RetentionPolicy(age=_duration(retention.age_seconds * 1000), count=retention.count)


def _duration(milliseconds: int) -> duration_pb2.Duration:
    duration = duration_pb2.Duration()
    duration.FromMilliseconds(milliseconds)
    return duration
