"""The rate-limit service's settings."""

from __future__ import annotations

import json

from pydantic import Field, field_validator

from services.ratelimit.rules import DEFAULT_RULES, Rule
from services.runtime.errors import InvalidArgumentError
from services.runtime.settings import RedisSettings, ServiceSettings


class LimiterRedisSettings(RedisSettings):
    """A check has tens of milliseconds: it fails at once rather than retry a lost connection."""

    retries: int = Field(default=0, ge=0, le=5)


class RateLimitSettings(ServiceSettings):
    redis: RedisSettings = Field(default_factory=LimiterRedisSettings)
    grpc_port: int = Field(default=50052, ge=0, le=65535)
    ratelimit_key_prefix: str = Field(
        default="rl", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$"
    )
    check_timeout_seconds: float = Field(
        default=0.04, gt=0, le=5, description="A check that Redis does not answer in time fails UNAVAILABLE."
    )
    rules_refresh_seconds: float = Field(default=0.5, gt=0, le=10)
    gateway_domain: str = "switchboard"
    ratelimit_default_rules: str = Field(
        default="",
        description="JSON list of rules seeded on the first start, e.g. "
        '[{"name": "api", "limit": 100, "period_ms": 1000, "burst": 100}]; empty: the built-in defaults.',
    )

    def seed_rules(self) -> tuple[Rule, ...]:
        if not self.ratelimit_default_rules:
            return DEFAULT_RULES
        return tuple(
            Rule.from_json(json.dumps({"algorithm": "gcra", **entry})).validated()
            for entry in json.loads(self.ratelimit_default_rules)
        )

    @field_validator("ratelimit_default_rules")
    @classmethod
    def _valid_rules(cls, value: str) -> str:
        if value:
            try:
                entries = json.loads(value)
                for entry in entries:
                    Rule.from_json(json.dumps({"algorithm": "gcra", **entry})).validated()
            except (ValueError, TypeError, KeyError, InvalidArgumentError) as error:
                raise ValueError(f"not a JSON list of valid rules: {error}") from None
        return value
