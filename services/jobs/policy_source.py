"""Where the queue policies in force come from: the defaults, and the settings document in Redis.

The admin service publishes the new version on `<settings key>:changed` whenever it writes the document
(docs/key-layout.md); `PolicySource.follow` re-reads at once on that, and on a timer as well, so a missed
message (a reconnect, a document edited by hand) heals within one interval.
"""

from __future__ import annotations

import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.jobs.queues import PolicyBook

logger = logging.getLogger(__name__)


def changes_channel(settings_key: str) -> str:
    """The channel a settings write announces itself on (the admin service names it the same way)."""
    return f"{settings_key}:changed"


class PolicySource:
    """Re-reads the stored settings into a `PolicyBook`; the policies in force stay when Redis does not
    answer or the document does not validate (the book logs that once)."""

    def __init__(self, redis: Redis, settings_key: str, book: PolicyBook) -> None:
        self._redis = redis
        self._key = settings_key
        self.book = book
        self.channel = changes_channel(settings_key)
        self._unreachable = False

    async def follow(self, *, reread_seconds: float) -> None:
        """Re-reads on every change notice, and at least every `reread_seconds`; runs until its
        connection fails (then it raises, and the loop that runs it subscribes again)."""
        async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
            await pubsub.subscribe(self.channel)
            # A change made while (re)subscribing published to nobody: read once now that we listen.
            await self.refresh()
            while True:
                await pubsub.get_message(timeout=reread_seconds)
                await self.refresh()

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
