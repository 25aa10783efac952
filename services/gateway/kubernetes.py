"""Envoy's files for Kubernetes, rendered from the same template as local runs.

In a cluster each service answers at its Service's name on its usual port, and Envoy reads its config and
the descriptor set from a ConfigMap mounted at `CONFIG_DIR`. `write_files` puts them into one folder that
`deploy/base/gateway/kustomization.yaml` turns into that ConfigMap (`make deploy-render` runs it).
"""

from __future__ import annotations

import shutil
from pathlib import Path, PurePosixPath

from services.gateway.config import render, split_address
from services.gateway.settings import GatewaySettings
from services.runtime.settings import PeerAddresses

# Where the gateway Deployment mounts its ConfigMap.
CONFIG_DIR = PurePosixPath("/etc/envoy/config")
CONFIG_FILE = "envoy.yaml"
TLS_CONFIG_FILE = "envoy-tls.yaml"  # what components/tls switches Envoy to
DESCRIPTOR_FILE = "descriptor.binpb"
# Where components/tls mounts the Secret `gateway-tls` (type kubernetes.io/tls).
TLS_DIR = PurePosixPath("/etc/envoy/tls")


def cluster_peers() -> PeerAddresses:
    """Each service at its Kubernetes Service name (`jobs`, `ratelimit`, ...), on the port it listens on
    by default (the fields' defaults, whatever *_ADDRESS the caller's environment holds)."""
    addresses = {}
    for field, info in PeerAddresses.model_fields.items():
        service = field.removesuffix("_address")
        addresses[field] = f"{service}:{split_address(str(info.default))[1]}"
    return PeerAddresses(**addresses)


def kubernetes_settings(base: GatewaySettings, *, tls: bool) -> GatewaySettings:
    """`base` (the environment's gateway settings) with the cluster's addresses and mount paths."""
    return base.model_copy(
        update={
            "listen_address": "0.0.0.0",  # noqa: S104 - the pod's port, reached through its Service
            "descriptor_path": str(CONFIG_DIR / DESCRIPTOR_FILE),
            "peers": cluster_peers(),
            # No reflection Deployment in deploy/ yet: the cluster's gateway routes no reflection.
            "reflection_address": "",
            # The body sink runs in the reflection process: none either, Envoy's buffer filter answers 413.
            "body_sink_address": "",
            # The dashboard's HTTP port on the admin Service (deploy/base/admin).
            "dashboard_address": "admin:8091",
            "tls_cert_file": str(TLS_DIR / "tls.crt") if tls else None,
            "tls_key_file": str(TLS_DIR / "tls.key") if tls else None,
        }
    )


def write_files(directory: Path, base: GatewaySettings) -> list[Path]:
    """Writes the config (plain and TLS) and a copy of the local descriptor set (`base.descriptor_path`)
    into `directory`."""
    descriptor = Path(base.descriptor_path)
    if not descriptor.is_file():
        raise ValueError(f"no descriptor set at {descriptor}: run `make protos` first")
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, tls in ((CONFIG_FILE, False), (TLS_CONFIG_FILE, True)):
        config = directory / name
        config.write_text(render(kubernetes_settings(base, tls=tls)))
        written.append(config)
    copied = directory / DESCRIPTOR_FILE
    shutil.copyfile(descriptor, copied)
    return [*written, copied]
