"""`make run`'s launcher: starts Redis when none answers, the services and Envoy, keeps them running
(a process that dies is restarted while the rest keep serving), and Ctrl-C or SIGTERM leaves nothing."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests

from devstack.ports import free_port
from devstack.services import REPO_ROOT, SERVICE_NAMES


def _processes_with(marker: str) -> list[int]:
    """PIDs whose environment carries `marker`: the launcher's whole process tree."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:  # gone, or not ours to read
            continue
    return found


T = TypeVar("T")


def _listening_addresses(port: int) -> set[str]:
    """The local addresses a TCP socket listens on at `port` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                # grpc listens on 127.0.0.1 through an IPv6 socket: ::ffff:127.0.0.1.
                loopback = address in {"0100007F", "0000000000000000FFFF00000100007F"}
                found.add("127.0.0.1" if loopback else address)
    return found


def _command_line(pid: int) -> list[str]:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().decode().split("\0")[:-1]
    except OSError:
        return []


def _pid_running(marker: str, module: str) -> int | None:
    """The PID of the launcher's child running `python -m <module>`, if there is one."""
    for pid in _processes_with(marker):
        if _command_line(pid)[1:3] == ["-m", module]:
            return pid
    return None


def _eventually(read: Callable[[], T], accept: Callable[[T], bool], *, timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = read()
        except (OSError, requests.RequestException) as error:  # the gateway or a service restarting
            value = error  # type: ignore[assignment]
        else:
            if accept(value):
                return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s; last seen {value!r}")
        time.sleep(0.05)


class _Launcher:
    """`python -m devstack` as `make run` runs it, its output (stdout and stderr) read as it comes."""

    def __init__(self, tmp_path: Path) -> None:
        self.marker = f"SWITCHBOARD_TEST_MARKER={uuid.uuid4().hex}"
        self.gateway_port = free_port()
        self.env = {
            **os.environ,
            self.marker.split("=", maxsplit=1)[0]: self.marker.split("=")[1],
            "DEVSTACK_RUN_DIR": str(tmp_path),
            "REDIS_HOST": "localhost",
            "REDIS_PORT": str(free_port()),  # nothing answers there: the launcher starts its own Redis
            "GATEWAY_PORT": str(self.gateway_port),
            "GATEWAY_ADMIN_PORT": str(free_port()),
            **{f"{name.upper()}_ADDRESS": f"127.0.0.1:{free_port()}" for name in SERVICE_NAMES},
            "GATEWAY_REFLECTION_ADDRESS": f"127.0.0.1:{free_port()}",
            "GATEWAY_BODY_SINK_ADDRESS": f"127.0.0.1:{free_port()}",
        }
        self.lines: list[str] = []
        self._ready = threading.Event()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "devstack"],
            cwd=REPO_ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            if line.startswith("Ctrl-C stops everything"):  # the summary, printed once all is ready
                self._ready.set()
        self._ready.set()

    def wait_ready(self) -> None:
        self._ready.wait(120)
        assert self.process.poll() is None, "launcher exited early:\n" + "".join(self.lines)

    def log_records(self) -> list[dict[str, Any]]:
        records = []
        for line in list(self.lines):
            if line.startswith("{"):
                records.append(json.loads(line))
        return records

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[_Launcher]:
    running = _Launcher(tmp_path)
    yield running
    if running.process.poll() is None:
        running.process.kill()
        running.process.wait()


def _assert_all_gone(launcher: _Launcher) -> None:
    deadline = time.monotonic() + 10
    while _processes_with(launcher.marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _processes_with(launcher.marker) == [], "no process left behind"
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", int(launcher.env["REDIS_PORT"]))) != 0, "its Redis stopped too"


def test_a_killed_worker_or_service_is_restarted_while_the_rest_keep_serving_until_sigterm(
    launcher: _Launcher,
) -> None:
    launcher.wait_ready()
    url = launcher.url
    worker = _pid_running(launcher.marker, "services.jobs.worker")
    assert worker is not None

    os.kill(worker, signal.SIGKILL)
    assert requests.get(f"{url}/api/test-connection", timeout=10).json()["ok"] is True, "the rest serve on"
    exit_line = _eventually(
        lambda: [r for r in launcher.log_records() if r.get("child") == "worker-0" and "exit_code" in r],
        bool,
        timeout=10,
        what="the worker's exit logged",
    )[0]
    assert exit_line["exit_code"] == -signal.SIGKILL
    assert exit_line["restart_in_seconds"] == 0.5
    restarted = _eventually(
        lambda: _pid_running(launcher.marker, "services.jobs.worker"),
        lambda pid: pid is not None and pid != worker,
        timeout=10,
        what="a new worker process",
    )
    job = requests.post(
        f"{url}/api/job",
        json={"queue": "analytics", "task": "diagnostics.echo", "payload": {"n": 1}},
        timeout=10,
    ).json()
    _eventually(
        lambda: requests.get(f"{url}/api/job/status", params={"id": job["id"]}, timeout=10).json()["state"],
        lambda state: state == "JOB_STATE_COMPLETED",
        timeout=30,
        what="a job run by the restarted worker",
    )
    assert _pid_running(launcher.marker, "services.jobs.worker") == restarted

    jobs_service = _pid_running(launcher.marker, "services.jobs")
    assert jobs_service is not None
    os.kill(jobs_service, signal.SIGKILL)
    _eventually(
        lambda: requests.get(f"{url}/api/queues", timeout=10).status_code,
        lambda status: status == 200,
        timeout=30,
        what="the jobs API answering again",
    )
    assert _pid_running(launcher.marker, "services.jobs") not in (None, jobs_service)
    assert len(_processes_with(launcher.marker)) == 10, (
        "launcher, five services, reflection, a worker, Envoy, the BigQuery emulator"
    )

    launcher.process.send_signal(signal.SIGTERM)
    assert launcher.process.wait(timeout=30) == 0
    _assert_all_gone(launcher)


def test_launcher_starts_everything_and_ctrl_c_stops_it_all(launcher: _Launcher, tmp_path: Path) -> None:
    launcher.wait_ready()
    assert f"http://localhost:{launcher.gateway_port}" in "".join(launcher.lines)
    response = requests.get(f"{launcher.url}/api/test-connection", timeout=10)
    assert response.json()["ok"] is True
    # The admin password: made, shown once, kept in the git-ignored run folder for the owner only.
    kept = tmp_path / "admin-password"
    password = kept.read_text().strip()
    assert len(password) >= 16 and kept.stat().st_mode & 0o077 == 0
    assert "".join(launcher.lines).count(password) == 1, "printed once"
    resume = f"{launcher.url}/api/queues/bigquery/resume"
    assert requests.post(resume, json={}, timeout=10).status_code == 401
    assert requests.post(resume, json={}, auth=("admin", password), timeout=10).status_code == 200
    for name in SERVICE_NAMES:
        port = int(launcher.env[f"{name.upper()}_ADDRESS"].rsplit(":", 1)[1])
        assert _listening_addresses(port) == {"127.0.0.1"}, f"{name} listens on loopback only"
    assert (tmp_path / "redis" / "appendonlydir").is_dir(), "its Redis keeps data in the run folder"
    # redis-server rewrites its environment for its process title, so it is checked by its port.
    assert len(_processes_with(launcher.marker)) == 10, (
        "launcher, five services, reflection, a worker, Envoy, the BigQuery emulator"
    )

    launcher.process.send_signal(signal.SIGINT)
    assert launcher.process.wait(timeout=30) == 0
    _assert_all_gone(launcher)


def test_the_readme_query_answers_rows_as_soon_as_make_run_is_ready(launcher: _Launcher) -> None:
    """The README's quick start: `make run`, then one curl of RunQuery on the sample dataset."""
    launcher.wait_ready()
    sql = "SELECT name, COUNT(*) AS n FROM switchboard_sample.events GROUP BY name ORDER BY n DESC"
    answer = requests.post(f"{launcher.url}/api/query", json={"sql": sql}, timeout=30)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["complete"] is True and body["rows"], body
    assert {row["name"] for row in body["rows"]} >= {"page_view", "signup", "purchase"}
    again = requests.post(f"{launcher.url}/api/query", json={"sql": sql}, timeout=30).json()
    assert again["cached"] is True and again["rows"] == body["rows"]
    launcher.process.send_signal(signal.SIGINT)
    assert launcher.process.wait(timeout=30) == 0
