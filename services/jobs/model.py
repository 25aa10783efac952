"""Jobs as the domain sees them: states, the job record, and one attempt's error."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any


class JobState(enum.StrEnum):
    WAITING = "waiting"
    DELAYED = "delayed"
    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    DEAD_LETTERED = "dead_lettered"

    @property
    def finished(self) -> bool:
        return self in FINISHED_STATES


FINISHED_STATES = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED, JobState.DEAD_LETTERED})


@dataclass(frozen=True)
class AttemptError:
    type: str
    message: str
    retryable: bool
    traceback: str = ""
    attempt: int = 0
    occurred_at_ms: int | None = None
    started_at_ms: int | None = None
    worker: str = ""
    """The worker the attempt ran on."""

    @classmethod
    def from_json(cls, raw: str | bytes) -> AttemptError:
        data = json.loads(raw)
        return cls(
            type=str(data.get("type", "")),
            message=str(data.get("message", "")),
            retryable=bool(data.get("retryable", False)),
            traceback=str(data.get("traceback", "")),
            attempt=int(data.get("attempt", 0)),
            occurred_at_ms=_int_or_none(data.get("occurred_at")),
            started_at_ms=_int_or_none(data.get("started_at")),
            worker=str(data.get("worker") or ""),
        )


@dataclass(frozen=True)
class Job:
    id: str
    queue: str
    task: str
    state: JobState
    payload: dict[str, Any]
    priority: int
    max_attempts: int
    attempts_made: int
    deliveries: int
    created_at_ms: int
    run_at_ms: int | None = None
    started_at_ms: int | None = None
    finished_at_ms: int | None = None
    progress: Any = None
    error: AttemptError | None = None
    attempt_errors: tuple[AttemptError, ...] = field(default_factory=tuple)
    cancel_requested: bool = False
    result: Any = None
    has_result: bool = False
    worker: str = ""
    version: int = 0
    """Transitions the job went through: of two answers about one job, the larger version is newer."""
    transitions: tuple[Transition, ...] = field(default_factory=tuple)
    """The states it entered, oldest first (the last 100)."""
    last_worker: str = ""
    """The worker that last took the job; kept after it finished."""


@dataclass(frozen=True)
class Transition:
    state: JobState
    at_ms: int
    worker: str = ""


@dataclass(frozen=True)
class JobFilter:
    """Which jobs a search or a bulk action applies to; every part given must match."""

    queues: tuple[str, ...]
    states: frozenset[JobState] = frozenset()
    """Any of these; empty for any state."""
    job_id: str = ""
    task: str = ""
    payload_words: tuple[str, ...] = ()
    error_words: tuple[str, ...] = ()
    created_after_ms: int | None = None
    """Inclusive."""
    created_before_ms: int | None = None
    """Exclusive."""


@dataclass(frozen=True)
class LogLine:
    at_ms: int
    level: str
    message: str
    attempt: int


def _int_or_none(value: object) -> int | None:
    if value in (None, ""):
        return None
    return int(float(str(value)))
