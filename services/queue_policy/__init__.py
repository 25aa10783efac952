"""How a queue runs its jobs: the policy model with its bounds, the default policy per queue, and merging
overrides into a policy.

Pure data shared by the jobs service and workers (which run by it) and the admin service (which validates
settings changes against it); neither imports the other.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

QUEUE_NAMES = ("analytics", "bigquery", "ratelimit")


class BackoffType(enum.StrEnum):
    FIXED = "fixed"
    EXPONENTIAL = "exponential"


class Backoff(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    type: BackoffType = BackoffType.EXPONENTIAL
    base_delay_ms: int = Field(default=1000, ge=0, le=86_400_000)
    max_delay_ms: int = Field(default=300_000, ge=0, le=86_400_000)
    jitter: float = Field(default=0.0, ge=0.0, le=1.0)

    def delay_ms(self, attempt: int, rng: random.Random | None = None) -> int:
        """The wait before attempt `attempt + 1`, after `attempt` (≥ 1) attempts failed."""
        if self.type is BackoffType.FIXED:
            delay = float(self.base_delay_ms)
        else:
            delay = self.base_delay_ms * 2.0 ** (attempt - 1)
        delay = min(delay, float(self.max_delay_ms))
        if self.jitter:
            delay += delay * self.jitter * (rng or random).random()
        return int(delay)


class Retention(BaseModel):
    """How long finished jobs are kept (BullMQ's removeOnComplete / removeOnFail); 0 keeps regardless."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    age_seconds: int = Field(default=0, ge=0, le=366 * 86_400)
    count: int = Field(default=0, ge=0, le=10_000_000)


class QueuePolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    max_attempts: int = Field(default=3, ge=1, le=100)
    backoff: Backoff = Backoff()
    timeout_ms: int = Field(default=60_000, ge=10, le=86_400_000)
    concurrency: int = Field(default=10, ge=1, le=1000)
    lease_ms: int = Field(default=30_000, ge=200, le=3_600_000)
    max_deliveries: int = Field(default=5, ge=1, le=100)
    remove_on_complete: Retention = Retention(age_seconds=86_400, count=10_000)
    remove_on_fail: Retention = Retention(age_seconds=7 * 86_400, count=50_000)
    rate_limit_rule: str = Field(default="", max_length=64, pattern=r"^([a-z0-9][a-z0-9_.\-]{0,63})?$")
    """The name of a rate-limit rule (services.ratelimit's naming), or empty for none."""


DEFAULT_POLICIES: Mapping[str, QueuePolicy] = {
    # Many small aggregation jobs: retry often, fail fast.
    "analytics": QueuePolicy(
        max_attempts=5,
        backoff=Backoff(type=BackoffType.EXPONENTIAL, base_delay_ms=500, max_delay_ms=60_000, jitter=0.2),
        timeout_ms=30_000,
        concurrency=50,
        lease_ms=15_000,
    ),
    # Long queries: few attempts, long timeout and lease, little concurrency.
    "bigquery": QueuePolicy(
        max_attempts=2,
        backoff=Backoff(type=BackoffType.FIXED, base_delay_ms=10_000, max_delay_ms=10_000),
        timeout_ms=15 * 60_000,
        concurrency=4,
        lease_ms=60_000,
        max_deliveries=3,
    ),
    # Calls to rate-limited upstreams: throttled by its rule (the rate-limit issue adds the limiter).
    "ratelimit": QueuePolicy(
        max_attempts=5,
        backoff=Backoff(type=BackoffType.EXPONENTIAL, base_delay_ms=1000, max_delay_ms=120_000, jitter=0.2),
        timeout_ms=60_000,
        concurrency=10,
        lease_ms=30_000,
        rate_limit_rule="queue-ratelimit",
    ),
}


def merge_policy(base: QueuePolicy, override: Mapping[str, Any]) -> QueuePolicy:
    """`base` with the fields of `override` (nested ones field by field); invalid → ValidationError."""
    merged = base.model_dump()
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return QueuePolicy.model_validate(merged)


def policy_overrides(base: QueuePolicy, policy: QueuePolicy) -> dict[str, Any]:
    """The fields of `policy` that differ from `base` (nested ones field by field), as JSON data:
    what `merge_policy(base, ...)` needs to give `policy` back."""
    wanted = policy.model_dump(mode="json")
    default = base.model_dump(mode="json")
    overrides: dict[str, Any] = {}
    for key, value in wanted.items():
        if isinstance(value, dict):
            changed = {name: item for name, item in value.items() if default[key].get(name) != item}
            if changed:
                overrides[key] = changed
        elif default[key] != value:
            overrides[key] = value
    return overrides
