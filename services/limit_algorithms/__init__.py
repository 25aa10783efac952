"""The rate-limit algorithms (GCRA and fixed window), shared domain code of the rate-limit service and the
jobs queue throttle.

Pure algorithm: the Lua functions that decide, and the parameters a decision takes. It knows nothing of
rules' storage, gRPC or queues; both services import it and neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

LUA_DIR = Path(__file__).with_name("lua")


@cache
def lua_functions() -> str:
    """The algorithms as Lua functions (`limit_decide`, `server_time_us`), to prepend to a script."""
    return (LUA_DIR / "limit.lua").read_text()


@dataclass(frozen=True)
class Throttle:
    """The parameters of one limit: an algorithm ('gcra' or 'fixed_window'), `limit` per `period_ms`,
    up to `capacity` at once."""

    algorithm: str
    period_ms: int
    limit: int
    capacity: int
