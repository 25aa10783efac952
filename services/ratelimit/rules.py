"""Named rate-limit rules: what they may be, their defaults, and where they are kept (Redis).

Rules live in one Redis hash, with a version counter bumped on every change. Every instance keeps a copy
and re-reads it when the version moves (checked every `refresh_seconds`), so a change made on one
instance takes effect on all of them within that interval, and a check costs no extra round trip.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import cast

from redis.asyncio import Redis

from services.runtime.errors import FieldViolation, InvalidArgumentError, NotFoundError

logger = logging.getLogger(__name__)

RULE_NAME = re.compile(r"^[a-z0-9][a-z0-9_.\-]{0,63}$")
MIN_PERIOD_MS = 1000
MAX_PERIOD_MS = 86_400_000
MAX_LIMIT = 1_000_000_000


class Algorithm(enum.StrEnum):
    GCRA = "gcra"
    FIXED_WINDOW = "fixed_window"


@dataclass(frozen=True)
class Rule:
    name: str
    limit: int
    period_ms: int
    burst: int = 0
    """GCRA: requests allowed at once; 0 means `limit` (a full period's worth)."""
    algorithm: Algorithm = Algorithm.GCRA
    shadow_mode: bool = False

    @property
    def capacity(self) -> int:
        return self.burst or self.limit

    def validated(self) -> Rule:
        problems = []
        if not RULE_NAME.match(self.name):
            problems.append(("name", "use 1 to 64 of a-z 0-9 _ . - starting with a letter or digit"))
        if not 0 < self.limit <= MAX_LIMIT:
            problems.append(("limit", f"must be a positive number of requests, at most {MAX_LIMIT}"))
        if not MIN_PERIOD_MS <= self.period_ms <= MAX_PERIOD_MS:
            problems.append(("period", f"must be between 1s and 1d (86400s); got {self.period_ms / 1000:g}s"))
        if not 0 <= self.burst <= MAX_LIMIT:
            problems.append(("burst", "must be 0 (a full period's worth) or a positive number of requests"))
        if self.period_ms % 1000 and self.algorithm is Algorithm.FIXED_WINDOW:
            problems.append(("period", "fixed windows are whole seconds"))
        if problems:
            raise InvalidArgumentError(
                "; ".join(f"{field}: {what}" for field, what in problems),
                violations=tuple(FieldViolation(field, what) for field, what in problems),
            )
        return self

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "algorithm": self.algorithm.value})

    @classmethod
    def from_json(cls, raw: str | bytes) -> Rule:
        data = json.loads(raw)
        return cls(**{**data, "algorithm": Algorithm(data.get("algorithm", "gcra"))})


DEFAULT_RULES: tuple[Rule, ...] = (
    # The gateway's per-client limit (by API key, else by address).
    Rule(name="api", limit=100, period_ms=1000, burst=100),
    # The gateway's ceiling per client address, whatever API keys it sends: rotating keys gains nothing.
    Rule(name="api-address", limit=1000, period_ms=1000, burst=1000),
    # Starts of jobs on the `ratelimit` queue, across all workers: smooth, no bursts.
    Rule(name="queue-ratelimit", limit=10, period_ms=1000, burst=1),
)


class RuleBook:
    """The rules in force, cached per instance and kept in line with Redis."""

    def __init__(self, redis: Redis, *, prefix: str, defaults: tuple[Rule, ...] = DEFAULT_RULES) -> None:
        self._redis = redis
        self._hash = f"{prefix}:rules"
        self._version_key = f"{prefix}:rules:version"
        self._defaults = defaults
        self._rules: dict[str, Rule] = {}
        self._version: int | None = None

    async def load(self) -> None:
        """Seeds the defaults on the very first start, then reads every rule."""
        await self.refresh(force=True)

    async def _seed(self) -> None:
        """Writes the default rules where none were ever stored: a new Redis, or one that lost its data."""
        async with self._redis.pipeline(transaction=True) as pipe:
            for rule in self._defaults:
                pipe.hsetnx(self._hash, rule.name, rule.to_json())
            pipe.setnx(self._version_key, 1)
            await pipe.execute()
        logger.info("seeded the default rules", extra={"rules": [rule.name for rule in self._defaults]})

    async def refresh(self, *, force: bool = False) -> None:
        raw_version = await self._redis.get(self._version_key)
        if raw_version is None:
            await self._seed()
            raw_version = await self._redis.get(self._version_key)
            force = True
        version = int(raw_version or 0)
        if version == self._version and not force:
            return
        raw = cast(Mapping[bytes, bytes], await self._redis.hgetall(self._hash))
        rules = {}
        for name, encoded in raw.items():
            try:
                rules[name.decode()] = Rule.from_json(encoded)
            except (ValueError, TypeError, KeyError):
                logger.exception("stored rule is unreadable; ignoring it", extra={"rule": name.decode()})
        self._rules = rules
        if self._version is not None:
            logger.info("rules updated", extra={"rules_version": version})
        self._version = version

    async def keep_fresh(self, interval_seconds: float) -> None:
        while True:
            await asyncio.sleep(interval_seconds)
            try:
                await self.refresh()
            except Exception:  # a failed refresh keeps the rules in force; health reports Redis
                logger.warning("could not refresh rules; keeping the ones in force", exc_info=True)

    def get(self, name: str) -> Rule:
        try:
            return self._rules[name]
        except KeyError:
            known = ", ".join(sorted(self._rules)) or "(none)"
            raise NotFoundError(
                f"no rate-limit rule {name!r}; known rules: {known}",
                reason="RULE_NOT_FOUND",
                metadata={"rule": name},
            ) from None

    def find(self, name: str) -> Rule | None:
        return self._rules.get(name)

    def all(self) -> list[Rule]:
        return sorted(self._rules.values(), key=lambda rule: rule.name)

    async def put(self, rule: Rule) -> Rule:
        rule.validated()
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._hash, rule.name, rule.to_json())
            pipe.incr(self._version_key)
            await pipe.execute()
        await self.refresh(force=True)
        return rule

    async def delete(self, name: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hdel(self._hash, name)
            pipe.incr(self._version_key)
            removed, _ = await pipe.execute()
        await self.refresh(force=True)
        if not removed:
            self.get(name)  # raises NotFoundError naming the known rules
