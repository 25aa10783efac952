"""Where the queue policies in force come from: the defaults, and the settings document in Redis."""

from __future__ import annotations

import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.jobs.queues import PolicyBook

logger = logging.getLogger(__name__)


class PolicySource:
    """Re-reads the stored settings into a `PolicyBook`; the policies in force stay when Redis does not
    answer or the document does not validate (the book logs that once)."""

    def __init__(self, redis: Redis, settings_key: str, book: PolicyBook) -> None:
        self._redis = redis
        self._key = settings_key
        self.book = book
        self._unreachable = False

    async def refresh(self) -> None:
        try:
            raw = await self._redis.get(self._key)
        except (RedisError, TimeoutError) as error:
            if not self._unreachable:
                logger.warning(
                    "could not read stored settings; keeping policies", extra={"error": str(error)}
                )
            self._unreachable = True
            return
        self._unreachable = False
        self.book.apply_settings(raw)
