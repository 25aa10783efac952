"""The event loop every Switchboard process runs on, and what keeps it from pausing.

uvloop (libuv underneath) does the loop's own work per I/O event, timer and callback in C. On our 2-core
machines it raised the rate-limit service's capacity by roughly 40% and lowered its tail latency
(BENCHMARKS.md). grpc.aio, redis-py and taskiq all run on it unchanged.

A process's start leaves some 70,000 long-lived objects (modules, protobuf descriptors, servicers). Each
full garbage collection walks all of them, about 20 ms during which the loop answers nothing: a p99
spike. `freeze_startup_objects` takes them out of the collector's sight once startup is done.
"""

from __future__ import annotations

import gc
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """Runs `main` to completion on a new uvloop event loop, as `asyncio.run` does on the default one."""
    return uvloop.run(main)


def freeze_startup_objects() -> None:
    """Collects once, then exempts every object alive now from later collections (`gc.freeze`): full
    collections then walk only what was made since. Call it when a process has finished starting."""
    gc.collect()
    gc.freeze()
