"""Writing a worker's outcome through a Redis outage: retried with backoff, up to a deadline."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

T = TypeVar("T")


async def persist(write: Callable[[], Awaitable[T]], *, what: str, give_up_after: float) -> T | None:
    """Retries `write` while Redis is unreachable, up to `give_up_after` seconds; None if it never lands.

    Giving up is safe: the job's lease then runs out and another worker runs it again. Each write is a
    transition that is idempotent under a re-send (see services/jobs/store.py), so a retry after a reply
    was lost does not apply it twice.
    """
    deadline = time.monotonic() + give_up_after
    delay = 0.05
    while True:
        try:
            return await write()
        except (RedisError, TimeoutError) as error:
            if time.monotonic() + delay > deadline:
                logger.error("could not record %s: %s", what, error)
                return None
            logger.warning(
                "Redis unreachable while recording %s; retrying", what, extra={"error": str(error)}
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
