"""The limiter: one atomic Lua call per check, on Redis server time, GCRA or fixed window.

Domain code: it knows rules and keys, not gRPC. `decide` consumes `cost` from a key's allowance;
`peek` reads it without consuming.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from redis.exceptions import RedisError

from services.limit_algorithms import lua_functions
from services.ratelimit.rules import Rule
from services.runtime.errors import InvalidArgumentError, UnavailableError
from services.runtime.redis_mux import MuxScript, RedisMux

LUA_DIR = Path(__file__).with_name("lua")
MAX_KEY_LENGTH = 256
MAX_COST = 1_000_000


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_after_ms: int
    retry_after_ms: int


class Limiter:
    """Checks against Redis; when Redis fails a check, the next checks within `cool_down_seconds` fail at
    once instead of each waiting out the timeout (a circuit breaker), then one check tries Redis again."""

    def __init__(
        self, redis: RedisMux, *, prefix: str, timeout_seconds: float, cool_down_seconds: float = 0.25
    ) -> None:
        self._prefix = prefix
        self._timeout = timeout_seconds
        self._cool_down = cool_down_seconds
        self._failing_until = 0.0
        self._script = MuxScript(redis, lua_functions() + "\n" + (LUA_DIR / "check.lua").read_text())

    async def warm_up(self) -> None:
        """Connects and loads the script, so the first checks of a new instance do not spend their short
        deadline doing it."""
        await self._script.load()

    async def decide(self, rule: Rule, key: str, cost: int = 1) -> Decision:
        return await self._run(rule, key, cost, peek=False)

    async def peek(self, rule: Rule, key: str) -> Decision:
        return await self._run(rule, key, 0, peek=True)

    async def _run(self, rule: Rule, key: str, cost: int, *, peek: bool) -> Decision:
        if not key or len(key) > MAX_KEY_LENGTH:
            raise InvalidArgumentError.for_field(
                "key", f"give 1 to {MAX_KEY_LENGTH} characters naming whose allowance"
            )
        if not peek and not 0 < cost <= MAX_COST:
            raise InvalidArgumentError.for_field("cost", f"must be between 1 and {MAX_COST}")
        if time.monotonic() < self._failing_until:
            raise self._unavailable()
        counter = f"{self._prefix}:c:{rule.name}:{rule.algorithm.value}:{key}"
        arguments = [rule.algorithm.value, rule.period_ms * 1000, rule.limit, rule.capacity, cost, int(peek)]
        try:
            reply = await self._script(
                keys=[counter], args=[*arguments, int(rule.shadow_mode)], wait_seconds=self._timeout
            )
        except RedisError as error:
            self._failing_until = time.monotonic() + self._cool_down
            raise self._unavailable() from error
        allowed, remaining, reset_after_us, retry_after_us = (int(value) for value in reply)
        return Decision(
            allowed=bool(allowed),
            limit=rule.limit,
            remaining=remaining,
            reset_after_ms=_ceil_ms(reset_after_us),
            retry_after_ms=_ceil_ms(retry_after_us),
        )

    def _unavailable(self) -> UnavailableError:
        return UnavailableError(
            f"the rate limiter's Redis did not answer within {self._timeout * 1000:g} ms; retry shortly",
            reason="LIMITER_UNAVAILABLE",
            retry_after_seconds=self._cool_down,
        )


def _ceil_ms(microseconds: int) -> int:
    return max(0, -(-microseconds // 1000))
