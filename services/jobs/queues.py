"""The policy in force per queue: the defaults (services.queue_policy) with the overrides read from Redis.

The settings stored in Redis (written by the admin API) may override any field per queue, and
`PolicyBook` re-reads them so running workers pick up a change without a restart.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

# The policy model is shared with the admin service (services.queue_policy); its names stay importable here.
from services.queue_policy import (
    DEFAULT_POLICIES,
    QUEUE_NAMES,
    Backoff,
    BackoffType,
    QueuePolicy,
    Retention,
    merge_policy,
    policy_overrides,
)

__all__ = [
    "DEFAULT_POLICIES",
    "QUEUE_NAMES",
    "Backoff",
    "BackoffType",
    "PolicyBook",
    "QueuePolicy",
    "Retention",
    "SettingsDocumentError",
    "StoredSettings",
    "merge_policy",
    "policies_from_document",
    "policy_overrides",
]

logger = logging.getLogger(__name__)


class StoredSettings(BaseModel):
    """The part of the stored settings document (written by the admin API) that the queues read."""

    model_config = ConfigDict(extra="allow", frozen=True)

    version: int = Field(default=0, ge=0)
    queue_policies: dict[str, dict[str, Any]] = Field(default_factory=dict)
    diagnostics_enabled: bool = True
    """The live switch of the `diagnostics.*` tasks (registered or not by DIAGNOSTICS_ENABLED at start)."""


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
        self.diagnostics_enabled = True
        """Whether new `diagnostics.*` jobs are accepted, per the stored settings."""
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
            version, policies, diagnostics = 0, dict(self._defaults), True
        else:
            if raw == self._rejected:
                return False
            try:
                version, policies = policies_from_document(raw, self._defaults)
                diagnostics = StoredSettings.model_validate_json(raw).diagnostics_enabled
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
        self.diagnostics_enabled = diagnostics
        return True
