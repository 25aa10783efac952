"""The launcher's supervisor with real child processes: a process that exits is restarted with a capped
exponential backoff, for as long as it keeps crashing, and the others keep running untouched."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devstack.processes import ManagedProcess
from devstack.supervisor import Backoff, Supervised, Supervisor


def _process(tmp_path: Path, name: str, code: str) -> ManagedProcess:
    return ManagedProcess(name, [sys.executable, "-c", code], log_path=tmp_path / f"{name}.log")


@pytest.fixture
def steady(tmp_path: Path) -> Iterator[ManagedProcess]:
    process = _process(tmp_path, "steady", "import time; time.sleep(120)")
    process.start()
    yield process
    process.kill()


def _exits(caplog: pytest.LogCaptureFixture, child: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.__dict__.get("child") == child and "exit_code" in r.__dict__]


def _check_until(supervisor: Supervisor, until: Callable[[], bool], timeout: float) -> None:
    """Runs supervision rounds (in this thread, which started the processes) until `until()` holds."""
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, "not within the timeout"
        supervisor.check()
        time.sleep(0.01)


def test_a_crashing_process_is_restarted_with_capped_backoff_and_the_rest_keep_running(
    tmp_path: Path, steady: ManagedProcess, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="devstack.supervisor")
    crasher = _process(tmp_path, "crasher", "import sys; print('crashing'); sys.exit(3)")
    crasher.start()
    steady_pid = steady.pid
    backoff = Backoff(initial_seconds=0.05, cap_seconds=0.2, stable_after_seconds=60)
    supervisor = Supervisor(
        [Supervised(crasher, crasher.start), Supervised(steady, steady.start)], backoff=backoff
    )

    _check_until(supervisor, lambda: len(_exits(caplog, "crasher")) >= 6, timeout=20)

    exits = _exits(caplog, "crasher")
    assert [r.__dict__["restart_in_seconds"] for r in exits[:6]] == [0.05, 0.1, 0.2, 0.2, 0.2, 0.2]
    assert {r.__dict__["exit_code"] for r in exits} == {3}
    assert "crashing" in exits[0].__dict__["log_tail"]
    restarts = [r for r in caplog.records if r.getMessage() == "crasher restarted"]
    assert len(restarts) >= 5, "it keeps being retried at the cap"
    assert len({r.__dict__["pid"] for r in restarts}) == len(restarts), "each restart is a new process"
    assert steady.running and steady.pid == steady_pid, "the others are left alone"
    assert not _exits(caplog, "steady")


def test_a_process_that_stayed_up_starts_over_from_the_shortest_delay(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="devstack.supervisor")
    # Up for 0.3 s each time: longer than `stable_after_seconds`, so no crash series builds up.
    flaky = _process(tmp_path, "flaky", "import sys, time; time.sleep(0.3); sys.exit(1)")
    flaky.start()
    backoff = Backoff(initial_seconds=0.05, cap_seconds=5, stable_after_seconds=0.2)
    supervisor = Supervisor([Supervised(flaky, flaky.start)], backoff=backoff)

    _check_until(supervisor, lambda: len(_exits(caplog, "flaky")) >= 3, timeout=20)

    assert [r.__dict__["restart_in_seconds"] for r in _exits(caplog, "flaky")[:3]] == [0.05] * 3
    flaky.kill()


def test_a_process_that_cannot_even_start_is_tried_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="devstack.supervisor")
    gone = _process(tmp_path, "gone", "import sys; sys.exit(1)")
    gone.start()
    attempts: list[float] = []

    def start_fails() -> None:
        attempts.append(time.monotonic())
        raise FileNotFoundError("no such program")

    supervisor = Supervisor(
        [Supervised(gone, start_fails)], backoff=Backoff(initial_seconds=0.02, cap_seconds=0.05)
    )
    _check_until(supervisor, lambda: len(attempts) >= 4, timeout=20)
    retries = [r for r in caplog.records if r.__dict__.get("start_error") == "no such program"]
    assert [r.__dict__["restart_in_seconds"] for r in retries[:3]] == [0.04, 0.05, 0.05]
