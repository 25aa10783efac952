"""The event loop every Switchboard process runs on: uvloop.

uvloop (libuv underneath) does the loop's own work per I/O event, timer and callback in C. On our 2-core
machines it raised the rate-limit service's capacity by about a third and lowered its tail latency
(BENCHMARKS.md). grpc.aio, redis-py and taskiq all run on it unchanged.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """Runs `main` to completion on a new uvloop event loop, as `asyncio.run` does on the default one."""
    return uvloop.run(main)
