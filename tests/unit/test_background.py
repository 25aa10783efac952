"""Background loops: one failed iteration never ends a loop; a loop that ends anyway is reported."""

from __future__ import annotations

import asyncio

import pytest

from services.runtime import background


async def test_a_failing_iteration_is_logged_once_per_streak_and_the_loop_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = 0
    done = asyncio.Event()

    async def iteration() -> None:
        nonlocal calls
        calls += 1
        if calls <= 3:
            raise ValueError("a bad settings document")
        if calls == 5:
            done.set()

    loop = asyncio.create_task(background.run_every("test", iteration, interval_seconds=0.001))
    await asyncio.wait_for(done.wait(), timeout=5)
    loop.cancel()
    failures = [r for r in caplog.records if "background iteration failed" in r.getMessage()]
    assert len(failures) == 1, "the same failure three times in a row is logged once"
    assert any("works again" in r.getMessage() for r in caplog.records)


async def test_only_cancellation_ends_the_loop() -> None:
    async def iteration() -> None:
        raise RuntimeError("always")

    loop = asyncio.create_task(background.run_every("test", iteration, interval_seconds=0.001))
    await asyncio.sleep(0.05)
    assert not loop.done(), "still running after many failed iterations"
    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop


async def test_a_loop_that_dies_anyway_is_reported_with_why() -> None:
    reported: list[tuple[str, BaseException]] = []

    async def broken_loop() -> None:
        raise SystemError("the loop itself broke")

    task = background.start("leases", broken_loop(), on_death=lambda name, why: reported.append((name, why)))
    with pytest.raises(SystemError):
        await task
    assert [(name, str(why)) for name, why in reported] == [("leases", "the loop itself broke")]
