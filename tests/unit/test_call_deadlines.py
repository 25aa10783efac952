"""The watchdog of call deadlines: it cuts exactly the calls past their deadline, about on time."""

from __future__ import annotations

import asyncio
import time

import pytest

from services.runtime.call_deadlines import CallDeadlines


async def _call(deadlines: CallDeadlines, takes_seconds: float) -> str:
    """A call as the call scope runs one: its outcome, and whether the watchdog cut it."""
    task = asyncio.current_task()
    assert task is not None
    deadlines.start(task)
    try:
        await asyncio.sleep(takes_seconds)
    except asyncio.CancelledError:
        if not deadlines.finish(task):
            raise
        task.uncancel()
        return "cut"
    cut = deadlines.finish(task)
    assert not cut and task.cancelling() == 0
    return "answered"


async def test_a_call_past_its_deadline_is_cut_about_on_time() -> None:
    deadlines = CallDeadlines(0.1)
    started = time.monotonic()
    assert await _call(deadlines, 30) == "cut"
    assert 0.1 <= time.monotonic() - started < 0.3


async def test_only_the_calls_past_their_deadline_are_cut() -> None:
    deadlines = CallDeadlines(0.2)
    outcomes = await asyncio.gather(*(_call(deadlines, takes) for takes in (0.01, 30, 0.05, 30, 0.1)))
    assert outcomes == ["answered", "cut", "answered", "cut", "answered"]


async def test_calls_started_later_get_their_whole_allowance() -> None:
    deadlines = CallDeadlines(0.2)
    first = asyncio.create_task(_call(deadlines, 30))
    await asyncio.sleep(0.15)
    later = asyncio.create_task(_call(deadlines, 0.15))  # due 0.35 s after the first started
    assert [await first, await later] == ["cut", "answered"]


async def test_a_cancellation_from_elsewhere_is_not_taken_for_the_deadline() -> None:
    deadlines = CallDeadlines(5)
    call = asyncio.create_task(_call(deadlines, 30))
    await asyncio.sleep(0.01)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call


def test_a_deadline_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        CallDeadlines(0)
