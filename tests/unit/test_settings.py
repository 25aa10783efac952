"""Settings come from the environment, with defaults, and a bad value fails with the variable's name."""

from __future__ import annotations

import pytest

from services.admin.settings import AdminSettings
from services.runtime.settings import (
    MAX_REDIS_CONNECTIONS,
    ConfigurationError,
    RedisSettings,
    ServiceSettings,
    load_settings,
)


def test_defaults_point_at_a_local_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REDIS_HOST", "REDIS_PORT", "REDIS_PASSWORD", "REDIS_DB", "REDIS_MAX_CONNECTIONS"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings(ServiceSettings)
    assert settings.redis.address == "localhost:6379"
    assert settings.redis.password is None
    assert settings.redis.max_connections == MAX_REDIS_CONNECTIONS == 50


def test_environment_overrides_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_HOST", "redis.internal")
    monkeypatch.setenv("REDIS_PORT", "6380")
    monkeypatch.setenv("REDIS_PASSWORD", "s3cret")
    monkeypatch.setenv("REDIS_DB", "2")
    monkeypatch.setenv("GRPC_PORT", "0")
    monkeypatch.setenv("JOBS_ADDRESS", "jobs:50051")
    settings = load_settings(AdminSettings)
    assert settings.redis.address == "redis.internal:6380"
    assert settings.redis.password is not None
    assert settings.redis.password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)
    assert settings.redis.db == 2
    assert settings.grpc_port == 0
    assert settings.peers.jobs_address == "jobs:50051"


@pytest.mark.parametrize(
    ("variable", "value", "complaint"),
    [
        ("REDIS_PORT", "not-a-port", "REDIS_PORT='not-a-port': Input should be a valid integer"),
        ("REDIS_PORT", "70000", "REDIS_PORT='70000': Input should be less than or equal to 65535"),
        (
            "REDIS_MAX_CONNECTIONS",
            "51",
            "REDIS_MAX_CONNECTIONS='51': Input should be less than or equal to 50",
        ),
        (
            "REDIS_MAX_CONNECTIONS",
            "0",
            "REDIS_MAX_CONNECTIONS='0': Input should be greater than or equal to 1",
        ),
        ("GRPC_PORT", "-1", "GRPC_PORT='-1': Input should be greater than or equal to 0"),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL='LOUD': Input should be 'DEBUG', 'INFO', 'WARNING' or 'ERROR'"),
    ],
)
def test_a_bad_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, complaint: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as raised:
        load_settings(ServiceSettings)
    assert complaint in str(raised.value)


def test_redis_settings_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_MAX_CONNECTIONS", "7")
    assert load_settings(RedisSettings).max_connections == 7
