"""The audit trail: every admin action, allowed or denied, with who, when, what, on what, and from where.

Written by every service that performs an admin action (and by the gateway's authorizer for refusals);
read by `GET /api/audit`. Bounded: the newest `max_entries` are kept.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Outcome(enum.StrEnum):
    ALLOWED = "allowed"
    DENIED = "denied"
    FAILED = "failed"


@dataclass(frozen=True)
class AuditEntry:
    time_ms: int
    principal: str
    """`Principal.label` of the caller (`admin:alice`, `key:billing`), or `anonymous:<address>`."""
    operation: str
    """The RPC's full method name, e.g. `/switchboard.jobs.v1.JobsService/PauseQueue`."""
    target: str
    """What it acted on: a queue, a rule, a key's name, `settings`."""
    outcome: Outcome
    source: str
    """The client's address as the gateway saw it (x-forwarded-for), else the peer's."""
    detail: str = ""
