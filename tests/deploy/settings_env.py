"""Which environment variables a service's settings class reads, and the class loaded from a pod's
environment, so a manifest's variables are checked against the code rather than a list kept by hand."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TypeVar
from unittest import mock

from pydantic import Field
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from services.admin.settings import AdminSettings
from services.analytics.settings import AnalyticsSettings
from services.bigquery.settings import BigQuerySettings
from services.jobs.settings import JobsSettings, WorkerSettings
from services.ratelimit.settings import RateLimitSettings
from services.runtime.settings import ServiceSettings, load_settings
from services.warehouse.settings import BigQueryBackendSettings
from tests.deploy.cluster import Manifest, Rendered, SecretValue, containers

SettingsT = TypeVar("SettingsT", bound=BaseSettings)


class WorkerProcessSettings(WorkerSettings):
    """What a worker process reads: its own settings, and those of the task modules it loads
    (services.bigquery.query_task reads the BigQuery backend's)."""

    bigquery: BigQueryBackendSettings = Field(default_factory=BigQueryBackendSettings)


# What each container's command runs → the settings it reads.
SETTINGS_BY_MODULE: dict[str, type[ServiceSettings]] = {
    "services.jobs": JobsSettings,
    "services.ratelimit": RateLimitSettings,
    "services.bigquery": BigQuerySettings,
    "services.analytics": AnalyticsSettings,
    "services.admin": AdminSettings,
    "services.jobs.worker": WorkerProcessSettings,
}

# Read by a library, not by our settings; each with the reason it is set.
LIBRARY_VARIABLES = {
    "BIGQUERY_EMULATOR_HOST": "google-cloud-bigquery calls the emulator (components/bigquery-emulator)",
}


def _nested(field: FieldInfo) -> type[BaseSettings] | None:
    for candidate in (field.default_factory, field.annotation):
        if isinstance(candidate, type) and issubclass(candidate, BaseSettings):
            return candidate
    return None


def variables(settings_class: type[BaseSettings]) -> dict[str, FieldInfo]:
    """Variable name → field, with each group's env_prefix (REDIS_*; peers have none)."""
    prefix = str(settings_class.model_config.get("env_prefix", ""))
    found: dict[str, FieldInfo] = {}
    for name, field in settings_class.model_fields.items():
        group = _nested(field)
        if group is not None:
            found.update(variables(group))
        else:
            found[(prefix + name).upper()] = field
    return found


def module_of(command: Sequence[str]) -> str | None:
    """`python -m services.jobs ...` → `services.jobs`."""
    if len(command) >= 3 and command[0] in {"python", "python3"} and command[1] == "-m":
        return command[2]
    return None


def command_variables(command: Sequence[str]) -> dict[str, str]:
    """What the command line sets: a worker's `--queues X` is its QUEUES."""
    arguments = list(command[3:])
    if "--queues" in arguments:
        return {"QUEUES": arguments[arguments.index("--queues") + 1]}
    return {}


def unknown(settings_class: type[BaseSettings], names: Sequence[str]) -> list[str]:
    known = variables(settings_class)
    return sorted(n for n in names if n.upper() not in known and n not in LIBRARY_VARIABLES)


def load_from(settings_class: type[SettingsT], env: Mapping[str, str]) -> SettingsT:
    """The settings as the pod's process builds them, from `env` alone; ConfigurationError if a value is
    one the service cannot run with."""
    with mock.patch.dict(os.environ, env, clear=True):
        return load_settings(settings_class)


def switchboard_containers(rendered: Rendered) -> list[tuple[Manifest, Manifest, str]]:
    """(workload, container, module) for every container that runs a Switchboard process."""
    found = []
    for workload in rendered.workloads():
        for container in containers(workload):
            module = module_of(container.get("command", []))
            if module is not None and module.startswith("services."):
                found.append((workload, container, module))
    return found


def process_environment(rendered: Rendered, container: Manifest) -> dict[str, str]:
    """The container's environment as its process sees it (command-line settings included), with a
    stand-in for each value that comes from a Secret."""
    env = {
        name: ("from-a-secret" if isinstance(value, SecretValue) else value)
        for name, value in rendered.environment(container).items()
    }
    return {**env, **command_variables(container["command"])}
