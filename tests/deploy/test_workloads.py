"""What every workload carries, in every overlay: a grace period longer than the process's own, requests
and limits, a locked-down securityContext, its PodDisruptionBudget, ServiceAccount and NetworkPolicy,
spread replicas; and production's replica floor."""

from __future__ import annotations

import pytest

from tests.deploy.cluster import Manifest, Rendered, containers
from tests.deploy.render import OVERLAYS
from tests.deploy.settings_env import (
    SETTINGS_BY_MODULE,
    load_from,
    process_environment,
    switchboard_containers,
)

CHECKED = ["base", "base+all(redis-in-cluster)", "base+all(external-redis)"] + [
    f"overlays/{name}" for name in OVERLAYS
]


def _pod(workload: Manifest) -> Manifest:
    spec: Manifest = workload["spec"]["template"]["spec"]
    return spec


@pytest.mark.parametrize("name", CHECKED)
def test_the_grace_period_outlasts_the_process_shutdown(renders: dict[str, Rendered], name: str) -> None:
    rendered = renders[name]
    for workload, container, module in switchboard_containers(rendered):
        settings = load_from(SETTINGS_BY_MODULE[module], process_environment(rendered, container))
        pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
        needed = pre_stop + settings.shutdown_grace_seconds
        grace = _pod(workload)["terminationGracePeriodSeconds"]
        assert grace > needed, (workload["metadata"]["name"], grace, needed)


@pytest.mark.parametrize("name", CHECKED)
def test_every_container_is_locked_down_and_sized(renders: dict[str, Rendered], name: str) -> None:
    for workload in renders[name].workloads():
        owner = workload["metadata"]["name"]
        pod = _pod(workload)
        assert pod["securityContext"]["runAsNonRoot"] is True, owner
        assert pod["securityContext"]["runAsUser"] > 0, owner
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, owner
        assert pod.get("automountServiceAccountToken") is False, owner
        for container in containers(workload):
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, owner
            assert security["readOnlyRootFilesystem"] is True, owner
            assert security["capabilities"] == {"drop": ["ALL"]}, owner
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), owner
            assert {"cpu", "memory"} <= set(resources["limits"]), owner
            assert ":" in container["image"] and not container["image"].endswith(":latest"), owner


@pytest.mark.parametrize("name", CHECKED)
def test_every_deployment_has_its_budget_account_policy_and_spread(
    renders: dict[str, Rendered], name: str
) -> None:
    rendered = renders[name]
    budgets = [b["spec"]["selector"]["matchLabels"] for b in rendered.of_kind("PodDisruptionBudget")]
    policies = [p["spec"]["podSelector"].get("matchLabels", {}) for p in rendered.of_kind("NetworkPolicy")]
    assert {} in policies, "a default deny covers every pod"
    for deployment in rendered.of_kind("Deployment"):
        owner = deployment["metadata"]["name"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        pod = _pod(deployment)
        assert pod["serviceAccountName"] in rendered.names("ServiceAccount"), owner
        if deployment["metadata"]["labels"].get("app.kubernetes.io/component") == "emulator":
            continue  # a development aid, one replica by design
        assert any(b.items() <= labels.items() for b in budgets), f"{owner} has no PodDisruptionBudget"
        assert any(p and p.items() <= labels.items() for p in policies), f"{owner} has no NetworkPolicy"
        keys = {c["topologyKey"] for c in pod["topologySpreadConstraints"]}
        assert {"topology.kubernetes.io/zone", "kubernetes.io/hostname"} <= keys, owner


def test_production_runs_at_least_two_of_everything(renders: dict[str, Rendered]) -> None:
    rendered = renders["overlays/production"]
    for deployment in rendered.of_kind("Deployment"):
        assert deployment["spec"]["replicas"] >= 2, deployment["metadata"]["name"]
    for hpa in rendered.of_kind("HorizontalPodAutoscaler"):
        assert hpa["spec"]["minReplicas"] >= 2, hpa["metadata"]["name"]
    for scaled in rendered.of_kind("ScaledObject"):
        assert scaled["spec"]["minReplicaCount"] >= 2, scaled["metadata"]["name"]
    autoscaled = {o["spec"]["scaleTargetRef"]["name"] for o in rendered.of_kind("HorizontalPodAutoscaler")}
    autoscaled |= {o["spec"]["scaleTargetRef"]["name"] for o in rendered.of_kind("ScaledObject")}
    assert autoscaled == rendered.names("Deployment"), "every Deployment scales: CPU or queue depth"
    assert rendered.get("Service", "gateway")["spec"]["type"] == "LoadBalancer"
    assert [p["port"] for p in rendered.get("Service", "gateway")["spec"]["ports"]] == [443]
    # Only the gateway is exposed: every other Service stays inside the cluster.
    for service in rendered.of_kind("Service"):
        if service["metadata"]["name"] != "gateway":
            assert service["spec"].get("type", "ClusterIP") == "ClusterIP", service["metadata"]["name"]
