"""Configuration from the environment: the settings every service shares, and how they are loaded.

Each service subclasses `ServiceSettings` with its own fields. Nothing is read at import time; a
process builds its settings once, in `__main__`, through `load_settings`, which turns a bad value into
one clear message naming the variable.
"""

from __future__ import annotations

from typing import Literal, TypeVar

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

# The Redis connection cap per process: managed Redis plans and our own Redis budget count on it.
MAX_REDIS_CONNECTIONS = 50

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


class ConfigurationError(Exception):
    """The environment holds a value a service cannot run with."""


class RedisSettings(BaseSettings):
    """Where Redis is and how this process may use it."""

    model_config = SettingsConfigDict(env_prefix="REDIS_", extra="ignore", frozen=True)

    host: str = "localhost"
    port: int = Field(default=6379, ge=1, le=65535)
    password: SecretStr | None = None
    db: int = Field(default=0, ge=0, le=15)
    max_connections: int = Field(
        default=MAX_REDIS_CONNECTIONS,
        ge=1,
        le=MAX_REDIS_CONNECTIONS,
        description="Pooled connections this process may open, plus one shared connection (RedisMux).",
    )
    timeout_seconds: float = Field(
        default=1.0, gt=0, le=30, description="Connect and command timeout of one Redis call."
    )
    retries: int = Field(
        default=2,
        ge=0,
        le=5,
        description="Retries of a call that lost its connection (with a short backoff).",
    )
    pool_wait_seconds: float = Field(
        default=2.0, gt=0, le=60, description="How long a call waits for a free pooled connection."
    )
    # Managed Redis (Memorystore, ElastiCache, Azure Cache) speaks TLS; the server certificate and its
    # host name are always verified.
    tls: bool = Field(default=False, description="Connect to Redis over TLS.")
    tls_ca_file: str | None = Field(
        default=None, description="CA bundle (PEM) that signed Redis's certificate; unset: the system's."
    )

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


class PeerAddresses(BaseSettings):
    """Where the sibling services answer gRPC (host:port), for the gateway and service-to-service calls."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    jobs_address: str = "localhost:50051"
    ratelimit_address: str = "localhost:50052"
    bigquery_address: str = "localhost:50053"
    analytics_address: str = "localhost:50054"
    admin_address: str = "localhost:50055"

    def by_service(self) -> dict[str, str]:
        """Service short name → address."""
        return {
            "jobs": self.jobs_address,
            "ratelimit": self.ratelimit_address,
            "bigquery": self.bigquery_address,
            "analytics": self.analytics_address,
            "admin": self.admin_address,
        }


class ServiceSettings(BaseSettings):
    """What every gRPC service process reads from its environment."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    grpc_host: str = "[::]"
    grpc_port: int = Field(default=50050, ge=0, le=65535, description="0 picks a free port.")
    port_file: str | None = Field(
        default=None, description="Write the bound port here once serving (for GRPC_PORT=0)."
    )
    log_level: LogLevel = "INFO"
    health_check_interval_seconds: float = Field(default=1.0, gt=0, le=60)
    shutdown_grace_seconds: float = Field(default=10.0, ge=0, le=300)
    call_timeout_seconds: float = Field(
        default=5.0, gt=0, le=600, description="Deadline of a call to a sibling service."
    )
    redis: RedisSettings = Field(default_factory=RedisSettings)


SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def load_settings(settings_class: type[SettingsT]) -> SettingsT:
    """Builds settings from the environment; a bad value raises `ConfigurationError` naming the variable."""
    try:
        return settings_class()
    except ValidationError as error:
        raise ConfigurationError(_describe(settings_class, error)) from None


def _describe(settings_class: type[BaseSettings], error: ValidationError) -> str:
    # A nested settings group (REDIS_*) fails on its own, under its own prefix.
    failed = next(
        (group for group in _settings_groups(settings_class) if group.__name__ == error.title),
        settings_class,
    )
    prefix = str(failed.model_config.get("env_prefix", ""))
    problems = []
    for problem in error.errors():
        variable = prefix + "_".join(str(part) for part in problem["loc"])
        problems.append(f"{variable.upper()}={problem.get('input')!r}: {problem['msg']}")
    return "invalid configuration: " + "; ".join(problems)


def _settings_groups(settings_class: type[BaseSettings]) -> list[type[BaseSettings]]:
    groups = [settings_class]
    for field_info in settings_class.model_fields.values():
        for candidate in (field_info.annotation, field_info.default_factory):
            if isinstance(candidate, type) and issubclass(candidate, BaseSettings):
                groups.extend(_settings_groups(candidate))
    return groups
