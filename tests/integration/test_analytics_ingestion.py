"""Ingesting while the jobs service cannot be reached: a 503 that says to retry, and no events left behind
that no job will ever read."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest
from redis.asyncio import Redis

from devstack.ports import free_port
from services.analytics.events import Event
from services.analytics.ingestion import Ingestor
from services.analytics.jobs_client import GrpcJobSubmitter
from services.analytics.keys import AnalyticsKeys
from services.analytics.retention_source import RetentionSource
from services.analytics.settings import AnalyticsLimits
from services.analytics.store import AnalyticsStore
from services.runtime.channels import open_channel
from services.runtime.errors import UnavailableError


@pytest.fixture
async def nowhere() -> AsyncIterator[grpc.aio.Channel]:
    """A channel to a port nothing listens on: the jobs service down."""
    channel = open_channel(f"127.0.0.1:{free_port()}", default_timeout=1.0)
    yield channel
    await channel.close()


async def test_a_batch_whose_job_cannot_be_submitted_is_a_503_and_leaves_nothing_behind(
    redis_client: Redis, nowhere: grpc.aio.Channel
) -> None:
    store = AnalyticsStore(redis_client, AnalyticsKeys(f"test-{uuid.uuid4().hex[:12]}"))
    retention = RetentionSource(redis_client, "no-settings-here", reread_seconds=5)
    ingestor = Ingestor(store, GrpcJobSubmitter(nowhere), AnalyticsLimits(), retention)
    events = [Event("signup", "u1", int(time.time() * 1000))]

    with pytest.raises(UnavailableError, match="retry in a moment with the same batch_id"):
        await ingestor.ingest(events, batch_id="", encoded_bytes=100)
    assert await redis_client.keys(f"{store.keys.base}batch:*") == [], "a generated id cannot be sent again"

    with pytest.raises(UnavailableError):
        await ingestor.ingest(events, batch_id="mine-1", encoded_bytes=100)
    assert await store.load_batch("mine-1") is not None, "kept for the caller's retry with the same id"


class _Accepting:
    """A jobs service that takes every job (this test is about the events kept, not the job)."""

    async def submit(self, *, queue: str, task: str, payload: dict[str, object], job_id: str) -> str:
        return job_id


async def test_an_event_without_a_timestamp_is_counted_at_the_time_it_was_received(
    redis_client: Redis,
) -> None:
    store = AnalyticsStore(redis_client, AnalyticsKeys(f"test-{uuid.uuid4().hex[:12]}"))
    retention = RetentionSource(redis_client, "no-settings-here", reread_seconds=5)
    received_at = 1_900_000_000.123
    ingestor = Ingestor(store, _Accepting(), AnalyticsLimits(), retention, clock=lambda: received_at)
    sent_at = int(received_at * 1000) - 60_000
    await ingestor.ingest(
        [Event("signup", "u1", 0), Event("signup", "u2", sent_at)], batch_id="stamped", encoded_bytes=100
    )
    kept = await store.load_batch("stamped")
    assert kept is not None
    assert [event.timestamp_ms for event in kept] == [int(received_at * 1000), sent_at]
