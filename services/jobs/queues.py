"""The queues and how each runs its jobs: the default policies, and overrides read from Redis.

Policies are data. `DEFAULT_POLICIES` fits each queue's work; the settings stored in Redis (written by the
admin API) may override any field per queue, and `PolicyBook` re-reads them so running workers pick up
a change without a restart.
"""

from __future__ import annotations

import enum
import logging
import random
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

logger = logging.getLogger(__name__)

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

    age_seconds: int = Field(default=0, ge=0)
    count: int = Field(default=0, ge=0)


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
    rate_limit_rule: str = ""


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


class StoredSettings(BaseModel):
    """The part of the stored settings document (written by the admin API) that the queues read."""

    model_config = ConfigDict(extra="allow", frozen=True)

    version: int = Field(default=0, ge=0)
    queue_policies: dict[str, dict[str, Any]] = Field(default_factory=dict)


class SettingsDocumentError(ValueError):
    """The stored settings document does not validate; the message says what is wrong."""


def policies_from_document(
    raw: bytes | str, defaults: Mapping[str, QueuePolicy]
) -> tuple[int, dict[str, QueuePolicy]]:
    """(version, policy per queue) of a stored settings document; anything invalid → SettingsDocumentError."""
    try:
        document = StoredSettings.model_validate_json(raw)
    except ValidationError as error:
        raise SettingsDocumentError(_problems(error)) from None
    policies = dict(defaults)
    problems = []
    for queue, override in document.queue_policies.items():
        if queue not in policies:
            problems.append(f"queue_policies.{queue}: no such queue; use one of {', '.join(policies)}")
            continue
        try:
            policies[queue] = merge_policy(defaults[queue], override)
        except ValidationError as error:
            problems.append(_problems(error, prefix=f"queue_policies.{queue}."))
    if problems:
        raise SettingsDocumentError("; ".join(problems))
    return document.version, policies


def _problems(error: ValidationError, prefix: str = "") -> str:
    return "; ".join(
        f"{prefix}{'.'.join(str(part) for part in problem['loc']) or '(document)'}: {problem['msg']}"
        for problem in error.errors()
    )


class PolicyBook:
    """The policy in force per queue: the defaults with the overrides from the stored settings."""

    def __init__(self, defaults: Mapping[str, QueuePolicy] = DEFAULT_POLICIES) -> None:
        self._defaults = dict(defaults)
        self._policies = dict(defaults)
        self.version = 0
        self._rejected: bytes | str | None = None

    def __getitem__(self, queue: str) -> QueuePolicy:
        return self._policies[queue]

    @property
    def queues(self) -> tuple[str, ...]:
        return tuple(self._policies)

    def apply_settings(self, raw: bytes | str | None) -> bool:
        """Applies the stored settings document (JSON: `{"version", "queue_policies": {queue: {...}}}`);
        → whether the policies in force are the document's.

        No document means the defaults. A document that does not validate, as a whole, changes nothing:
        the policies in force stay (the defaults at start), and what is wrong is logged once per document.
        """
        if raw is None:
            version, policies = 0, dict(self._defaults)
        else:
            if raw == self._rejected:
                return False
            try:
                version, policies = policies_from_document(raw, self._defaults)
            except SettingsDocumentError as error:
                self._rejected = raw
                logger.error(
                    "stored settings do not validate; keeping the policies in force",
                    extra={"problem": str(error), "version_in_force": self.version},
                )
                return False
        self._rejected = None
        if version != self.version:
            logger.info("queue policies updated", extra={"settings_version": version})
        self._policies = policies
        self.version = version
        return True
