"""The analytics retention in force: the defaults, or the `analytics` section of the settings document.

The admin service publishes on `<settings key>:changed` whenever it writes the document
(docs/key-layout.md): the service follows that and re-reads on a timer too, so a missed message heals
within one interval. A task in a worker re-reads when its copy is older than the interval. The retention in
force stays when Redis does not answer or the section does not validate (logged once).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.analytics_retention import AnalyticsRetention

logger = logging.getLogger(__name__)


def settings_key(jobs_key_prefix: str) -> str:
    """Where the admin service keeps the settings document (docs/key-layout.md)."""
    return f"{jobs_key_prefix}:settings"


def parse_retention(raw: bytes | str | None) -> AnalyticsRetention:
    """The document's `analytics` section; the defaults when there is none. Raises ValueError on a bad one."""
    if raw is None:
        return AnalyticsRetention()
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("the settings document is not a JSON object")
    section = data.get("analytics") or {}
    try:
        return AnalyticsRetention.model_validate(section)
    except ValidationError as error:
        raise ValueError(str(error)[:500]) from None


class RetentionSource:
    def __init__(
        self, redis: Redis, key: str, *, reread_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._redis = redis
        self._key = key
        self._reread_seconds = reread_seconds
        self._clock = clock
        self._read_at: float | None = None
        self._complained = False
        self.current = AnalyticsRetention()

    async def follow(self) -> None:
        """Re-reads on every change notice and at least every interval; raises when its connection fails
        (the loop that runs it subscribes again)."""
        async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
            await pubsub.subscribe(f"{self._key}:changed")
            await self.refresh()
            while True:
                await pubsub.get_message(timeout=self._reread_seconds)
                await self.refresh()

    async def fresh(self) -> AnalyticsRetention:
        """The retention, re-read first when the copy is older than the interval."""
        if self._read_at is None or self._clock() - self._read_at >= self._reread_seconds:
            await self.refresh()
        return self.current

    async def refresh(self) -> None:
        self._read_at = self._clock()
        try:
            raw = await self._redis.get(self._key)
            self.current = parse_retention(raw)
        except (RedisError, TimeoutError, ValueError) as error:
            if not self._complained:
                logger.warning(
                    "analytics retention not re-read; keeping it", extra={"error": str(error)[:500]}
                )
            self._complained = True
            return
        self._complained = False
