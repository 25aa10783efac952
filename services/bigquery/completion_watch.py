"""One subscriber per process to the end of `bigquery.query` jobs, fanning each notice out to its waiters.

A RunQuery call that waits on a job registers a waiter for the job's id and awaits it, bounded by its
`wait_ms`: no call polls. The process holds one pattern subscription to every job's completion channel
(`services.bigquery.completion.channel_for`), whatever the number of waiting calls, and wakes the waiters
of the job a notice names. A notice lost while the subscription reconnects costs its waiters only their
wait: they then answer with the job id to follow, as for a slow query.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator

from redis.asyncio import Redis

logger = logging.getLogger(__name__)

_MARK = "\x00"


class CompletionWatch:
    def __init__(self, redis: Redis, channel_for: Callable[[str], str]) -> None:
        self._redis = redis
        head, _, tail = channel_for(_MARK).partition(_MARK)
        self._head, self._tail = head, tail
        self.pattern = _glob_escape(head) + "*" + _glob_escape(tail)
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}
        self.listening = asyncio.Event()
        """Set while the subscription is up (tests and the bench wait on it)."""

    @contextlib.contextmanager
    def waiter(self, job_id: str) -> Iterator[asyncio.Future[None]]:
        """A future done when job `job_id` is announced as ended; register before checking the job's
        state, so an end between the check and the wait is not missed."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(job_id, set()).add(future)
        try:
            yield future
        finally:
            waiting = self._waiters.get(job_id)
            if waiting is not None:
                waiting.discard(future)
                if not waiting:
                    del self._waiters[job_id]

    @property
    def waiting(self) -> int:
        return sum(len(futures) for futures in self._waiters.values())

    async def follow(self) -> None:
        """Listens until the connection fails (then it raises; the loop that runs it subscribes again)."""
        try:
            async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                await pubsub.psubscribe(self.pattern)
                self.listening.set()
                async for message in pubsub.listen():
                    if message.get("type") == "pmessage":
                        self._announce(message["channel"])
        finally:
            self.listening.clear()
            # Whoever waits now would wait out its whole wait_ms for a notice that may not come: wake them
            # to look at the job's state themselves once.
            self._wake_all()

    def _announce(self, channel: bytes | str) -> None:
        name = channel.decode() if isinstance(channel, bytes) else channel
        if not (name.startswith(self._head) and name.endswith(self._tail)):
            return
        job_id = name[len(self._head) : len(name) - len(self._tail)]
        for future in self._waiters.get(job_id, ()):
            if not future.done():
                future.set_result(None)

    def _wake_all(self) -> None:
        for futures in self._waiters.values():
            for future in futures:
                if not future.done():
                    future.set_result(None)


def _glob_escape(text: str) -> str:
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)
