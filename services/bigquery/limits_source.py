"""The BigQuery query limits in force: the `bigquery` part of the settings document, kept fresh.

The admin service validates and writes the document (`<JOBS_KEY_PREFIX>:settings`) and announces each
write on `<key>:changed`; this re-reads it at once on that notice and on a timer too, as the jobs
service's policy source does, so a missed notice heals within one interval. Only the fields read here are
modelled; the rest of the document is not this service's. A document that does not validate keeps the
limits in force.
"""

from __future__ import annotations

import logging

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)


class QueryLimits(BaseModel):
    """The defaults are the admin service's, for a store with no document yet."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    cache_ttl_seconds: int = Field(default=600, ge=0)
    default_wait_ms: int = Field(default=2_000, ge=0)
    max_wait_ms: int = Field(default=30_000, ge=0)
    allowed_datasets: tuple[str, ...] = ()


class _Document(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    version: int = 0
    bigquery: QueryLimits = QueryLimits()


class LimitsSource:
    def __init__(self, redis: Redis, *, prefix: str) -> None:
        self._redis = redis
        self.key = f"{prefix}:settings"
        self.channel = f"{self.key}:changed"
        self.limits = QueryLimits()
        self.version = 0
        self._rejected: bytes | str | None = None
        self._unreachable = False

    async def follow(self, *, reread_seconds: float) -> None:
        """Re-reads on every change notice and at least every `reread_seconds`; raises when its
        connection fails (the loop that runs it subscribes again)."""
        async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
            await pubsub.subscribe(self.channel)
            # A change made while (re)subscribing published to nobody: read once now that we listen.
            await self.refresh()
            while True:
                await pubsub.get_message(timeout=reread_seconds)
                await self.refresh()

    async def refresh(self) -> None:
        try:
            raw = await self._redis.get(self.key)
        except (RedisError, TimeoutError) as error:
            if not self._unreachable:
                logger.warning("could not read stored settings; keeping limits", extra={"error": str(error)})
            self._unreachable = True
            return
        self._unreachable = False
        self.apply(raw)

    def apply(self, raw: bytes | str | None) -> None:
        if raw is None:
            self.limits, self.version = QueryLimits(), 0
            return
        if raw == self._rejected:
            return
        try:
            document = _Document.model_validate_json(raw)
        except ValidationError as error:
            self._rejected = raw
            logger.error(
                "stored settings do not validate; keeping the query limits in force",
                extra={"problem": str(error)[:500], "version_in_force": self.version},
            )
            return
        self._rejected = None
        if document.version != self.version:
            logger.info("query limits updated", extra={"settings_version": document.version})
        self.limits, self.version = document.bigquery, document.version
