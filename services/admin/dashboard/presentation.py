"""How the protos read on a page: state names, times, JSON, durations; used by the templates."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

from google.protobuf import json_format
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from switchboard.jobs.v1 import jobs_pb2

_PREFIX = "JOB_STATE_"
# The tabs of a queue, in lifecycle order; "latest" is every state.
STATES = ("waiting", "delayed", "active", "completed", "failed", "cancelled", "dead_lettered")
RETRYABLE = frozenset({"failed", "cancelled", "dead_lettered"})
CANCELLABLE = frozenset({"waiting", "delayed", "active"})
FINISHED = frozenset({"completed", "failed", "cancelled", "dead_lettered"})


def state_name(value: int) -> str:
    name = jobs_pb2.JobState.Name(value)  # type: ignore[arg-type]  # any int names a state or raises
    return name.removeprefix(_PREFIX).lower()


def state_value(name: str) -> jobs_pb2.JobState.ValueType:
    """A tab's state → the enum value; "" or "latest" → 0 (every state); unknown → ValueError."""
    if name in ("", "latest"):
        return jobs_pb2.JOB_STATE_UNSPECIFIED
    if name not in STATES:
        raise ValueError(f"unknown state {name!r}; use one of: latest, {', '.join(STATES)}")
    return jobs_pb2.JobState.Value(_PREFIX + name.upper())


def is_set(stamp: Timestamp) -> bool:
    return bool(stamp.seconds or stamp.nanos)


def when(stamp: Timestamp) -> str:
    if not is_set(stamp):
        return "—"
    moment = datetime.fromtimestamp(stamp.seconds + stamp.nanos / 1e9, tz=UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S") + "Z"


def ago(stamp: Timestamp) -> str:
    if not is_set(stamp):
        return "—"
    return duration(time.time() - (stamp.seconds + stamp.nanos / 1e9)) + " ago"


def duration(seconds: float) -> str:
    seconds = max(seconds, 0.0)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def proto_duration(value: Message) -> str:
    seconds = getattr(value, "seconds", 0) + getattr(value, "nanos", 0) / 1e9
    return duration(seconds) if seconds else "—"


def pretty(message: Message | None) -> str:
    """A Struct or Value as indented JSON; "" for nothing."""
    if message is None:
        return ""
    data = json_format.MessageToDict(message)
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False)


def progress(job: jobs_pb2.Job) -> str:
    if not job.HasField("progress"):
        return "—"
    kind = job.progress.WhichOneof("kind")
    if kind == "number_value":
        return f"{job.progress.number_value:g}%"
    return pretty(job.progress)


def ms_when(milliseconds: int) -> str:
    stamp = Timestamp()
    stamp.FromMilliseconds(milliseconds)
    return when(stamp)


def log_level(value: int) -> str:
    name = jobs_pb2.LogLevel.Name(value)  # type: ignore[arg-type]  # any int names a level or raises
    return name.removeprefix("LOG_LEVEL_").lower()


FILTERS = {
    "log_level": log_level,
    "ms_when": ms_when,
    "state": state_name,
    "when": when,
    "ago": ago,
    "pretty": pretty,
    "progress": progress,
    "proto_duration": proto_duration,
}
