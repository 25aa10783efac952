"""Background loops that cannot die from one failed iteration.

`run_every` calls an iteration on an interval. An iteration that raises is logged (once per streak of the
same failure, then again when it recovers) and the loop goes on: a bad settings document, a Redis outage
or a bug hit by one job cannot silently stop reclaim, retention or policy refresh. Only cancellation ends
the loop. Should the loop itself end any other way, `on_death` is told why, so the process can stop
serving (health NOT_SERVING, or a worker's exit) instead of running on without it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)

Iteration = Callable[[], Awaitable[object]]
DeathReport = Callable[[str, BaseException], None]


async def run_every(
    name: str,
    iteration: Iteration,
    *,
    interval_seconds: float | Callable[[], float],
    first_delay_seconds: float = 0.0,
) -> None:
    """Runs `iteration` every `interval_seconds` (a number, or read before each sleep) until cancelled."""
    failing: str | None = None
    if first_delay_seconds:
        await asyncio.sleep(first_delay_seconds)
    while True:
        try:
            await iteration()
        except asyncio.CancelledError:
            raise
        except Exception as error:  # one iteration's failure must never end the loop
            described = f"{type(error).__name__}: {error}"
            if described != failing:
                logger.error(
                    "background iteration failed; the loop goes on",
                    exc_info=error,
                    extra={"loop": name, "error": described},
                )
            failing = described
        else:
            if failing is not None:
                logger.info("background iteration works again", extra={"loop": name})
            failing = None
        interval = interval_seconds() if callable(interval_seconds) else interval_seconds
        await asyncio.sleep(interval)


def start(name: str, loop: Awaitable[None], *, on_death: DeathReport) -> asyncio.Task[None]:
    """Starts `loop` as a task; should it end other than by cancellation, `on_death(name, why)` is told."""

    async def guarded() -> None:
        try:
            await loop
        except asyncio.CancelledError:
            raise
        except BaseException as error:
            logger.critical("background loop died", exc_info=error, extra={"loop": name})
            on_death(name, error)
            raise
        else:
            why = RuntimeError("the loop returned")
            logger.critical("background loop ended", extra={"loop": name})
            on_death(name, why)

    return asyncio.create_task(guarded(), name=f"background:{name}")
