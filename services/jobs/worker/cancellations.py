"""Listens for cancel requests of active jobs and signals the running task at once."""

from __future__ import annotations

from collections.abc import Mapping

from services.jobs.result_backend import InFlight
from services.jobs.store import JobStore

LISTEN_SECONDS = 0.5


async def listen_for_cancellations(store: JobStore, in_flight: Mapping[str, InFlight]) -> None:
    """Runs until its connection fails (then it raises, and the loop that runs it reconnects)."""
    async with store.redis.pubsub(ignore_subscribe_messages=True) as pubsub:
        await pubsub.subscribe(store.cancel_channel)
        while True:
            message = await pubsub.get_message(timeout=LISTEN_SECONDS)
            if message is None:
                continue
            running = in_flight.get(message["data"].decode())
            if running is not None:
                running.context.cancelled.set()
