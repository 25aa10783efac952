"""The contract's tooling: buf lint on the protos, Envoy's own validation of every rendered config."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from devstack.envoy import envoy_binary
from devstack.stack import DESCRIPTOR_PATH
from services.gateway.config import render
from services.gateway.settings import GatewaySettings
from services.runtime.settings import PeerAddresses

REPO_ROOT = Path(__file__).resolve().parents[2]

RENDERINGS = {
    "local": GatewaySettings(descriptor_path=str(DESCRIPTOR_PATH)),
    "kubernetes": GatewaySettings(
        descriptor_path=str(DESCRIPTOR_PATH),
        admin_port=9901,
        peers=PeerAddresses(
            jobs_address="jobs.switchboard.svc.cluster.local:50051",
            ratelimit_address="ratelimit.switchboard.svc.cluster.local:50052",
            bigquery_address="bigquery.switchboard.svc.cluster.local:50053",
            analytics_address="analytics.switchboard.svc.cluster.local:50054",
            admin_address="admin.switchboard.svc.cluster.local:50055",
        ),
    ),
}


@pytest.mark.parametrize("variant", sorted(RENDERINGS))
def test_envoy_validates_the_rendered_config(variant: str, tmp_path: Path) -> None:
    config = tmp_path / f"envoy-{variant}.yaml"
    config.write_text(render(RENDERINGS[variant]))
    result = subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(config), "--use-dynamic-base-id"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout + result.stderr


def test_envoy_rejects_a_broken_config(tmp_path: Path) -> None:
    """The validation above can fail: a route to a cluster that does not exist is refused."""
    config = tmp_path / "broken.yaml"
    config.write_text(render(RENDERINGS["local"]).replace("cluster: jobs,", "cluster: no-such-cluster,", 1))
    result = subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(config), "--use-dynamic-base-id"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0


def test_buf_lint_passes_on_the_protos() -> None:
    buf = Path(sys.executable).with_name("buf")
    result = subprocess.run(
        [str(buf), "lint", str(DESCRIPTOR_PATH), "--config", "protos/buf.yaml", "--path", "switchboard"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
