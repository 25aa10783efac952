"""The manifests, the gateway's Envoy config and the services' settings agree with each other, in every
overlay: clusters point at Services that exist, ports line up with containers and settings, probes ask
the gRPC health service, every variable is a real setting, every Secret is documented and none is kept."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from devstack.services import REPO_ROOT
from services.gateway.settings import GatewaySettings
from services.jobs.settings import JobsSettings
from services.ratelimit.settings import RateLimitSettings
from services.runtime.server import LIVENESS_SERVICE
from services.runtime.settings import ConfigurationError, ServiceSettings
from tests.deploy.cluster import Rendered, SecretValue, containers, port_named
from tests.deploy.render import OVERLAYS
from tests.deploy.settings_env import (
    SETTINGS_BY_MODULE,
    load_from,
    process_environment,
    switchboard_containers,
    unknown,
    variables,
)

OVERLAY_RENDERS = [f"overlays/{name}" for name in OVERLAYS]
CHECKED = ["base", "base+all(redis-in-cluster)", "base+all(external-redis)", *OVERLAY_RENDERS]
DOCS = REPO_ROOT / "docs" / "deploy.md"
# Ports that no setting names (none now: the admin's `http` port is the dashboard's DASHBOARD_PORT).
PORTS_WITHOUT_A_SETTING: set[tuple[str, str]] = set()
# Envoy's one plain-HTTP upstream: the dashboard, on the admin Service's `http` port.
HTTP_CLUSTERS = {"dashboard"}
# Names that would hold a secret if a ConfigMap or a plain env value carried them.
# A switch named for keys (SWITCHBOARD_REQUIRE_API_KEYS) is not a key.
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|(?<!REQUIRE_)API_KEYS?$|HTPASSWD|PRIVATE", re.IGNORECASE)


def _envoy_config(rendered: Rendered) -> Any:
    gateway = rendered.get("Deployment", "gateway")
    envoy = next(containers(gateway))
    name = envoy["args"][envoy["args"].index("--config-path") + 1].rsplit("/", 1)[1]
    volume = next(v for v in gateway["spec"]["template"]["spec"]["volumes"] if "configMap" in v)
    return yaml.safe_load(rendered.get("ConfigMap", volume["configMap"]["name"])["data"][name])


@pytest.mark.parametrize("name", CHECKED)
def test_every_switchboard_process_is_known(renders: dict[str, Rendered], name: str) -> None:
    """A new Deployment must say which settings it reads, or the checks below would skip it."""
    for workload, _, module in switchboard_containers(renders[name]):
        assert module in SETTINGS_BY_MODULE, (workload["metadata"]["name"], module)
    assert len(switchboard_containers(renders[name])) >= 8


@pytest.mark.parametrize("name", CHECKED)
def test_envoy_clusters_point_at_services_and_ports_that_exist(
    renders: dict[str, Rendered], name: str
) -> None:
    rendered = renders[name]
    clusters = _envoy_config(rendered)["static_resources"]["clusters"]
    assert clusters
    for cluster in clusters:
        for locality in cluster["load_assignment"]["endpoints"]:
            for endpoint in locality["lb_endpoints"]:
                socket = endpoint["endpoint"]["address"]["socket_address"]
                host, port = socket["address"], int(socket["port_value"])
                service = rendered.get("Service", host)
                ports = {int(p["port"]): p for p in service["spec"]["ports"]}
                assert port in ports, (cluster["name"], host, port, list(ports))
                kind = "http" if cluster["name"] in HTTP_CLUSTERS else "grpc"
                assert ports[port]["name"] == kind, (cluster["name"], f"Envoy talks {kind} to it")
                workloads = rendered.selected_by(service)
                assert workloads, f"Service {host} selects no pods"
                for workload in workloads:
                    assert port_named(next(containers(workload)), kind) == port, (host, port)


@pytest.mark.parametrize("name", CHECKED)
def test_service_ports_match_container_ports_and_settings(renders: dict[str, Rendered], name: str) -> None:
    rendered = renders[name]
    switchboard = {w["metadata"]["name"]: (c, m) for w, c, m in switchboard_containers(rendered)}
    for service in rendered.of_kind("Service"):
        workloads = rendered.selected_by(service)
        assert workloads, f"Service {service['metadata']['name']} selects no pods"
        for workload in workloads:
            container = next(containers(workload))
            for port in service["spec"]["ports"]:
                target = port.get("targetPort", port["port"])
                container_port = port_named(container, target) if isinstance(target, str) else int(target)
                assert container_port is not None, (service["metadata"]["name"], port)
                if service["spec"].get("clusterIP") == "None":
                    assert container_port == port["port"], "a headless Service's port is the pod's port"
                owner = workload["metadata"]["name"]
                if owner not in switchboard or (owner, port["name"]) in PORTS_WITHOUT_A_SETTING:
                    continue
                settings = load_from(
                    SETTINGS_BY_MODULE[switchboard[owner][1]], process_environment(rendered, container)
                )
                setting = {"grpc": "grpc_port", "metrics": "metrics_port", "http": "dashboard.port"}[
                    port["name"]
                ]
                value: Any = settings
                for part in setting.split("."):
                    value = getattr(value, part)
                assert value == container_port, (owner, setting)
    # The gateway: its container port is the port Envoy's listener binds.
    listener = _envoy_config(rendered)["static_resources"]["listeners"][0]
    gateway = next(containers(rendered.get("Deployment", "gateway")))
    assert port_named(gateway, "http") == listener["address"]["socket_address"]["port_value"]
    assert port_named(gateway, "http") == GatewaySettings().port


@pytest.mark.parametrize("name", CHECKED)
def test_every_probe_uses_the_grpc_port(renders: dict[str, Rendered], name: str) -> None:
    rendered = renders[name]
    for workload, container, _ in switchboard_containers(rendered):
        owner = workload["metadata"]["name"]
        grpc_port = port_named(container, "grpc")
        probes = {kind: container.get(kind) for kind in ("startupProbe", "readinessProbe", "livenessProbe")}
        assert probes["readinessProbe"] and probes["livenessProbe"], owner
        if grpc_port is None:
            # A worker serves no gRPC: it has no health service yet, so it is probed on /metrics.
            metrics = port_named(container, "metrics")
            for kind, probe in probes.items():
                if probe:
                    assert probe["httpGet"]["port"] in ("metrics", metrics), (owner, kind)
            continue
        assert probes["startupProbe"], f"{owner}: Python starts slowly, it needs a startup probe"
        for kind, probe in probes.items():
            assert probe is not None
            assert set(probe) & {"grpc", "httpGet", "tcpSocket", "exec"} == {"grpc"}, (owner, kind)
            assert probe["grpc"]["port"] == grpc_port, (owner, kind)
        # Readiness follows Redis (overall health); liveness must not, or an outage restarts every pod.
        assert probes["readinessProbe"]["grpc"].get("service", "") == "", owner
        assert probes["livenessProbe"]["grpc"]["service"] == LIVENESS_SERVICE, owner
    gateway = next(containers(rendered.get("Deployment", "gateway")))
    for kind in ("readinessProbe", "livenessProbe"):
        assert gateway[kind]["tcpSocket"]["port"] == port_named(gateway, "http"), kind


@pytest.mark.parametrize("name", CHECKED)
def test_every_variable_a_deployment_sets_is_a_setting_of_its_service(
    renders: dict[str, Rendered], name: str
) -> None:
    rendered = renders[name]
    for workload, container, module in switchboard_containers(rendered):
        settings_class = SETTINGS_BY_MODULE[module]
        env = process_environment(rendered, container)
        assert not unknown(settings_class, list(env)), (
            workload["metadata"]["name"],
            unknown(settings_class, list(env)),
        )
        # And every value is one the service starts with.
        load_from(settings_class, env)


def test_the_variable_check_catches_a_typo() -> None:
    """The check above can fail: a misspelt variable, or one of another service, is reported."""
    assert unknown(JobsSettings, ["REDIS_HOST", "REDIS_HSOT", "METRICS_PORT"]) == ["REDIS_HSOT"]
    assert unknown(RateLimitSettings, ["METRICS_PORT", "CHECK_TIMEOUT_SECONDS"]) == ["METRICS_PORT"]
    with pytest.raises(ConfigurationError, match="GRPC_PORT"):
        load_from(JobsSettings, {"GRPC_PORT": "70000"})


def _required_in_a_cluster(settings_class: type[Any]) -> set[str]:
    """What a pod must set: fields without a default, and the defaults that only hold on one machine
    (Redis on localhost, siblings on localhost, a gRPC port the Service must agree with)."""
    required = {name for name, field in variables(settings_class).items() if field.is_required()}
    if issubclass(settings_class, ServiceSettings):
        required |= {"REDIS_HOST", "REDIS_PORT"}
    return required


@pytest.mark.parametrize("name", CHECKED)
def test_every_required_setting_is_set(renders: dict[str, Rendered], name: str) -> None:
    rendered = renders[name]
    for workload, container, module in switchboard_containers(rendered):
        owner = workload["metadata"]["name"]
        settings_class = SETTINGS_BY_MODULE[module]
        env = process_environment(rendered, container)
        required = _required_in_a_cluster(settings_class)
        if port_named(container, "grpc") is not None:
            required.add("GRPC_PORT")
        if port_named(container, "metrics") is not None:
            required.add("METRICS_PORT")
        assert not required - set(env), (owner, sorted(required - set(env)))
        # Any sibling address the process uses points at a Service, not at localhost.
        for variable, value in env.items():
            if variable.endswith("_ADDRESS"):
                host, _, port = value.rpartition(":")
                service = rendered.get("Service", host)
                assert int(port) in {p["port"] for p in service["spec"]["ports"]}, (owner, variable)
        for variable in variables(settings_class):
            if variable.endswith("_ADDRESS") and variable not in env:
                assert module != "services.admin", f"admin checks every sibling: {variable} unset"
        if module == "services.jobs.worker":
            assert "RATELIMIT_ADDRESS" in env, f"{owner} reads its queue's rate-limit rules"


def test_jobs_workers_and_admin_share_one_key_prefix(renders: dict[str, Rendered]) -> None:
    """The admin service writes the settings document under the jobs' prefix (bigquery reads it too)."""
    for name in CHECKED:
        rendered = renders[name]
        prefixes = {
            process_environment(rendered, container).get("JOBS_KEY_PREFIX", "default")
            for _, container, module in switchboard_containers(rendered)
            if module in {"services.jobs", "services.jobs.worker", "services.admin", "services.bigquery"}
        }
        assert len(prefixes) == 1, (name, prefixes)


@pytest.mark.parametrize("name", CHECKED)
def test_every_secret_referenced_is_documented(renders: dict[str, Rendered], name: str) -> None:
    docs = DOCS.read_text()
    for secret in renders[name].secrets_referenced():
        assert f"`{secret}`" in docs, f"Secret {secret} is not described in docs/deploy.md"


def test_the_production_render_holds_no_secret_values(renders: dict[str, Rendered]) -> None:
    rendered = renders["overlays/production"]
    assert not rendered.of_kind("Secret")
    for config_map in rendered.of_kind("ConfigMap"):
        for key, value in config_map.get("data", {}).items():
            assert not SECRET_NAME.search(key), (config_map["metadata"]["name"], key)
            assert "-----BEGIN" not in value, (config_map["metadata"]["name"], key)
            assert "inline_string" not in value and "inline_bytes" not in value, "no inline key material"
    for workload in rendered.workloads():
        for container in containers(workload):
            for entry in container.get("env", []):
                if SECRET_NAME.search(entry["name"]):
                    assert "secretKeyRef" in entry.get("valueFrom", {}), (workload["metadata"]["name"], entry)
    # The secrets production needs are required there, so a missing one fails the pod's start loudly.
    for _, container, _ in switchboard_containers(rendered):
        password = rendered.environment(container)["REDIS_PASSWORD"]
        assert isinstance(password, SecretValue) and not password.optional
    assert {"redis-auth", "redis-tls-ca", "gateway-tls"} <= rendered.secrets_referenced()


def test_production_requires_api_keys_in_every_service_and_locally_none_does(
    renders: dict[str, Rendered],
) -> None:
    """The access mode is per process and fixed at start: every guarded service must agree on it."""
    guarded = {f"services.{name}" for name in ("jobs", "ratelimit", "bigquery", "analytics", "admin")}
    for overlay, expected in (("overlays/production", "true"), ("base", "false")):
        rendered = renders[overlay]
        seen = {
            module: rendered.environment(container).get("SWITCHBOARD_REQUIRE_API_KEYS")
            for _, container, module in switchboard_containers(rendered)
            if module in guarded
        }
        assert set(seen) == guarded, overlay
        assert set(seen.values()) == {expected}, (overlay, seen)
