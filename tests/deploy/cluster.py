"""Reading rendered manifests: objects by kind and name, and what a container's environment holds."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

Manifest = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class SecretValue:
    """An environment variable filled from a Secret at run time: its value is not in the manifests."""

    secret: str
    key: str
    optional: bool


class Rendered:
    """The objects of one `kubectl kustomize` output."""

    def __init__(self, objects: list[Manifest]) -> None:
        self.objects = objects

    def of_kind(self, kind: str) -> list[Manifest]:
        return [o for o in self.objects if o["kind"] == kind]

    def get(self, kind: str, name: str) -> Manifest:
        for candidate in self.of_kind(kind):
            if candidate["metadata"]["name"] == name:
                return candidate
        raise AssertionError(f"no {kind} {name!r} in the render")

    def names(self, kind: str) -> set[str]:
        return {o["metadata"]["name"] for o in self.of_kind(kind)}

    def workloads(self) -> list[Manifest]:
        return self.of_kind("Deployment") + self.of_kind("StatefulSet")

    def selected_by(self, service: Manifest) -> list[Manifest]:
        """The workloads whose pods a Service's selector picks."""
        selector = service["spec"].get("selector") or {}
        return [
            workload
            for workload in self.workloads()
            if selector
            and selector.items() <= (workload["spec"]["template"]["metadata"].get("labels") or {}).items()
        ]

    def environment(self, container: Manifest) -> dict[str, str | SecretValue]:
        """Every variable the container gets from `envFrom` and `env`, as Kubernetes resolves them (later
        entries win); Secrets stay references."""
        env: dict[str, str | SecretValue] = {}
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                data = self.get("ConfigMap", source["configMapRef"]["name"]).get("data", {})
                env.update({source.get("prefix", "") + key: value for key, value in data.items()})
            else:
                raise AssertionError(f"envFrom {source} would hide which variables a Secret sets")
        for entry in container.get("env", []):
            if "value" in entry:
                env[entry["name"]] = entry["value"]
                continue
            reference = entry["valueFrom"]
            if "secretKeyRef" in reference:
                ref = reference["secretKeyRef"]
                env[entry["name"]] = SecretValue(ref["name"], ref["key"], bool(ref.get("optional", False)))
            elif "configMapKeyRef" in reference:
                ref = reference["configMapKeyRef"]
                env[entry["name"]] = self.get("ConfigMap", ref["name"])["data"][ref["key"]]
            else:
                env[entry["name"]] = f"<{next(iter(reference))}>"
        return env

    def secrets_referenced(self) -> set[str]:
        """Every Secret a pod reads, by env, envFrom or volume."""
        names: set[str] = set()
        for workload in self.workloads():
            pod = workload["spec"]["template"]["spec"]
            for container in containers(workload):
                for entry in container.get("env", []):
                    ref = entry.get("valueFrom", {}).get("secretKeyRef")
                    if ref:
                        names.add(ref["name"])
                for source in container.get("envFrom", []):
                    if "secretRef" in source:
                        names.add(source["secretRef"]["name"])
            for volume in pod.get("volumes", []):
                if "secret" in volume:
                    names.add(volume["secret"]["secretName"])
                for projected in volume.get("projected", {}).get("sources", []):
                    if "secret" in projected:
                        names.add(projected["secret"]["name"])
        return names


def containers(workload: Manifest) -> Iterator[Manifest]:
    pod = workload["spec"]["template"]["spec"]
    yield from pod.get("initContainers", [])
    yield from pod["containers"]


def port_named(container: Manifest, name: str) -> int | None:
    for port in container.get("ports", []):
        if port.get("name") == name:
            return int(port["containerPort"])
    return None
