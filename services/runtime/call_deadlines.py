"""Deadlines of the calls in flight, kept by one watchdog task instead of a timer per call.

`asyncio.timeout` around a call costs about 10 µs of CPU under uvloop (a timer armed and disarmed, the
context manager's bookkeeping): several percent of a rate-limit check. Noting a call's task in a dict
costs well under a microsecond. A watchdog wakes every `resolution_seconds` while calls are in flight and
cancels those past their deadline, so a call is cut at most one resolution after it.

Every call gets the same allowance, so the dict's insertion order is the order of the deadlines: the
watchdog looks at the oldest calls only, and stops at the first one still within its time.
"""

from __future__ import annotations

import asyncio

# How late, at most, a call is cut after its deadline (and never coarser than a tenth of the deadline).
MAX_RESOLUTION_SECONDS = 0.05


class CallDeadlines:
    """Cuts each call (its task) that runs longer than `seconds`; the call's owner asks `finish` whether
    its task was cut, and if so, takes the cancellation back (`Task.uncancel`) to answer for it."""

    def __init__(self, seconds: float) -> None:
        if seconds <= 0:
            raise ValueError(f"a call deadline must be positive, not {seconds}")
        self.seconds = seconds
        self._resolution = min(MAX_RESOLUTION_SECONDS, seconds / 10)
        self._due: dict[asyncio.Task[object], float] = {}
        self._cut: set[asyncio.Task[object]] = set()
        self._watchdog: asyncio.Task[None] | None = None

    def start(self, task: asyncio.Task[object]) -> None:
        """Starts `task`'s allowance."""
        loop = task.get_loop()
        self._due[task] = loop.time() + self.seconds
        watchdog = self._watchdog
        if watchdog is None or watchdog.done() or watchdog.get_loop() is not loop:
            self._watchdog = loop.create_task(self._watch(loop))

    def _still_running_after_cut(self) -> bool:
        return any(not task.done() for task in self._cut)

    def finish(self, task: asyncio.Task[object]) -> bool:
        """Forgets `task`; True if it was cancelled for running past its deadline."""
        self._due.pop(task, None)
        if task in self._cut:
            self._cut.discard(task)
            return True
        return False

    async def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        while self._due or self._still_running_after_cut():
            await asyncio.sleep(self._resolution)
            now = loop.time()
            # A cancellation can be swallowed: one that lands just as a library's own timeout fires comes
            # out as that library's TimeoutError (asyncio.timeout on Python 3.11), which redis-py then
            # retries. So a cut call is cancelled again, every resolution, until it has ended.
            for task in list(self._cut):
                if not task.done():
                    task.cancel()
            overdue = []
            for task, due in self._due.items():
                if due > now:
                    break  # the rest came later, so they are due later
                overdue.append(task)
            for task in overdue:
                del self._due[task]
                if not task.done():
                    self._cut.add(task)
                    task.cancel()
