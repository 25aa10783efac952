"""The Dockerfile: hadolint accepts it, its final stage runs as a numeric non-root user without the dev
tools, and the build context holds only what it copies."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

from devstack.services import REPO_ROOT

DOCKERFILE = REPO_ROOT / "Dockerfile"


def _final_stage() -> list[str]:
    lines = [line.strip() for line in DOCKERFILE.read_text().splitlines()]
    starts = [i for i, line in enumerate(lines) if line.upper().startswith("FROM ")]
    assert len(starts) >= 2, "multi-stage: a build stage and a slim runtime stage"
    return [line for line in lines[starts[-1] :] if line and not line.startswith("#")]


def test_hadolint_accepts_the_dockerfile() -> None:
    hadolint = Path(sys.executable).with_name("hadolint")
    result = subprocess.run(
        [str(hadolint), "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_runs_as_a_numeric_non_root_user() -> None:
    users = [line.split(None, 1)[1] for line in _final_stage() if line.upper().startswith("USER ")]
    assert users, "the final stage sets USER"
    assert re.fullmatch(r"[1-9]\d*(:[1-9]\d*)?", users[-1]), users[-1]
    deployment = (REPO_ROOT / "deploy" / "base" / "jobs" / "deployment.yaml").read_text()
    assert f"runAsUser: {users[-1].split(':')[0]}" in deployment, "the manifests run as the image's user"


def test_the_final_stage_has_no_build_or_dev_tools() -> None:
    final = "\n".join(_final_stage())
    assert "PYTHONDONTWRITEBYTECODE=1" in final, "a read-only root filesystem: no .pyc written at run time"
    assert "pip install" not in final and "apt-get" not in final
    copied = re.findall(r"COPY --from=build\S*(?: --chown=\S+)? (\S+)", final)
    assert copied and all(not source.startswith("/src/.protoc") for source in copied), copied
    # The runtime venv is built from the project's runtime dependencies only.
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    runtime = {re.split(r"[=<>\[]", d)[0].lower() for d in project["dependencies"]}
    dev = {re.split(r"[=<>\[]", d)[0].lower() for d in project["optional-dependencies"]["dev"]}
    assert not runtime & dev
    assert '["project"]["dependencies"]' in DOCKERFILE.read_text()


def test_the_build_context_holds_only_what_the_dockerfile_copies() -> None:
    patterns = [
        line.strip()
        for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", "everything is left out unless let in"
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    sources: set[str] = set()
    for line in DOCKERFILE.read_text().splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            sources.update(part.rstrip("/") for part in line.split()[1:-1])
    assert sources == allowed, (sources, allowed)
    assert not allowed & {".venv", "gen", ".git", "tests", ".run", "deploy"}
