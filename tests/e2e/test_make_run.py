"""`make run`'s launcher: starts Redis when none answers, the services and Envoy; Ctrl-C leaves nothing."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

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


def test_launcher_starts_everything_and_ctrl_c_stops_it_all(tmp_path: Path) -> None:
    marker = f"SWITCHBOARD_TEST_MARKER={uuid.uuid4().hex}"
    gateway_port = free_port()
    env = {
        **os.environ,
        marker.split("=", maxsplit=1)[0]: marker.split("=")[1],
        "DEVSTACK_RUN_DIR": str(tmp_path),
        "REDIS_HOST": "localhost",
        "REDIS_PORT": str(free_port()),  # nothing answers there: the launcher starts its own Redis
        "GATEWAY_PORT": str(gateway_port),
        "GATEWAY_ADMIN_PORT": str(free_port()),
        **{f"{name.upper()}_ADDRESS": f"127.0.0.1:{free_port()}" for name in SERVICE_NAMES},
        "GATEWAY_REFLECTION_ADDRESS": f"127.0.0.1:{free_port()}",
    }
    launcher = subprocess.Popen(
        [sys.executable, "-m", "devstack"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert launcher.stdout is not None
        output = []
        for line in launcher.stdout:  # the summary is printed once everything is ready
            output.append(line)
            if line.startswith("Ctrl-C stops everything"):
                break
        else:
            raise AssertionError("launcher exited early:\n" + "".join(output))
        assert f"http://localhost:{gateway_port}" in "".join(output)
        response = requests.get(f"http://127.0.0.1:{gateway_port}/api/test-connection", timeout=10)
        assert response.json()["ok"] is True
        assert (tmp_path / "redis" / "appendonlydir").is_dir(), "its Redis keeps data in the run folder"
        # redis-server rewrites its environment for its process title, so it is checked by its port.
        assert len(_processes_with(marker)) == 9, "launcher, five services, reflection, a worker, Envoy"

        launcher.send_signal(signal.SIGINT)
        assert launcher.wait(timeout=30) == 0
    finally:
        if launcher.poll() is None:
            launcher.kill()
    deadline = time.monotonic() + 10
    while _processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _processes_with(marker) == [], "no process left behind"
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", int(env["REDIS_PORT"]))) != 0, "its Redis stopped too"
