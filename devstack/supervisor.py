"""Keeps the local stack's processes running: one that exits is started again, after a growing delay.

`make run` is a developer's whole stack on one machine. A worker killed by a task (`diagnostics.crash`
does it on purpose), a service that crashed, Envoy or our own Redis gone: each is started again on its
own, with an exponential backoff capped at `Backoff.cap_seconds`, and the rest keep running. A process
that keeps crashing keeps being retried at the cap; one that stays up `Backoff.stable_after_seconds`
starts over from the shortest delay. Every exit and restart is one JSON log line naming the process, its
exit code and the next delay. Only the launcher's own stop (Ctrl-C, SIGTERM) ends the stack.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from devstack.processes import ManagedProcess

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backoff:
    """Delays between restarts of one process: `initial_seconds`, doubled each time, at most `cap_seconds`."""

    initial_seconds: float = 0.5
    cap_seconds: float = 15.0
    stable_after_seconds: float = 30.0
    """A process up this long counts as healthy: its next restart waits the shortest delay again."""

    def delay(self, consecutive_failures: int) -> float:
        """The wait before restart number `consecutive_failures` (1 for the first) of a crash series."""
        exponent = min(max(consecutive_failures - 1, 0), 32)  # 2**32 times anything is past any cap
        return float(min(self.cap_seconds, self.initial_seconds * 2**exponent))


@dataclass
class Supervised:
    """One process the supervisor keeps running, and how to start it again."""

    process: ManagedProcess
    restart: Callable[[], None]
    """Starts the process again without waiting for it to be ready (the supervisor must stay responsive)."""


@dataclass
class _Watch:
    unit: Supervised
    started_at: float
    failures: int = 0
    restart_at: float | None = None


class Supervisor:
    """Watches `units` (already started) and restarts any that exits, until told to stop."""

    def __init__(
        self,
        units: Sequence[Supervised],
        *,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._backoff = backoff or Backoff()
        self._clock = clock
        now = clock()
        self._watches = [_Watch(unit, started_at=now) for unit in units]

    def run(self, stop: threading.Event, *, poll_seconds: float = 0.1) -> None:
        """Checks the processes every `poll_seconds` until `stop` is set. Runs in the thread that started
        them: a child asks to be signalled when that thread ends (PR_SET_PDEATHSIG)."""
        while not stop.wait(poll_seconds):
            self.check()

    def check(self) -> None:
        """One round: notes processes that exited and restarts those whose delay has passed."""
        for watch in self._watches:
            if watch.restart_at is None:
                if not watch.unit.process.running:
                    self._schedule(watch)
            elif self._clock() >= watch.restart_at:
                self._restart(watch)

    def _schedule(self, watch: _Watch) -> None:
        now = self._clock()
        if now - watch.started_at >= self._backoff.stable_after_seconds:
            watch.failures = 0
        watch.failures += 1
        delay = self._backoff.delay(watch.failures)
        watch.restart_at = now + delay
        process = watch.unit.process
        logger.warning(
            "%s exited unexpectedly; restarting it in %g s",
            process.name,
            delay,
            extra={
                "child": process.name,
                "exit_code": process.process.returncode,
                "restart_in_seconds": delay,
                "consecutive_failures": watch.failures,
                "log": str(process.log_path),
                "log_tail": process.log_tail(5),
            },
        )

    def _restart(self, watch: _Watch) -> None:
        process = watch.unit.process
        watch.restart_at = None
        watch.started_at = self._clock()
        try:
            watch.unit.restart()
        except Exception as error:  # it could not even start: a failure like any other, retried later
            logger.exception("%s could not be started", process.name, extra={"child": process.name})
            self._schedule_after_failed_start(watch, error)
            return
        logger.info("%s restarted", process.name, extra={"child": process.name, "pid": process.pid})

    def _schedule_after_failed_start(self, watch: _Watch, error: Exception) -> None:
        watch.failures += 1
        delay = self._backoff.delay(watch.failures)
        watch.restart_at = self._clock() + delay
        logger.warning(
            "%s: trying again in %g s",
            watch.unit.process.name,
            delay,
            extra={
                "child": watch.unit.process.name,
                "start_error": str(error),
                "restart_in_seconds": delay,
                "consecutive_failures": watch.failures,
            },
        )
