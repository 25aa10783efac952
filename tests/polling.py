"""Waiting on state in tests: poll a reading until it satisfies a condition, or fail saying what was seen."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    read: Callable[[], Awaitable[T]],
    accept: Callable[[T], bool],
    *,
    timeout: float,  # noqa: ASYNC109 - a deadline on polling, not on one call
    what: str,
    interval: float = 0.01,
    tolerate: tuple[type[Exception], ...] = (),
) -> T:
    """`tolerate`: errors of reading that mean "not yet" (a dependency restarting), not failure."""
    deadline = time.monotonic() + timeout
    seen: object = None
    while True:
        try:
            value = await read()
        except tolerate as error:
            seen = error
        else:
            if accept(value):
                return value
            seen = value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s; last seen {seen!r}")
        await asyncio.sleep(interval)
