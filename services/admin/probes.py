"""The probes of the connection test: Redis (PING, server version), a sibling's gRPC health, and BigQuery
(`SELECT 1` through the same client the queries use)."""

from __future__ import annotations

import asyncio

import grpc
from redis.asyncio import Redis
from redis.exceptions import TimeoutError as RedisTimeoutError

from services.admin.connection import Probe
from services.runtime.channels import check_health
from services.warehouse.backend import BigQueryBackend
from services.warehouse.settings import BackendKind


def redis_probe(redis: Redis, address: str, *, deadline_seconds: float) -> Probe:
    """PING and the server's version, within the Redis deadline every API call has."""

    async def probe() -> str:
        try:
            async with asyncio.timeout(deadline_seconds):
                await redis.ping()
                info = await redis.info("server")
        except TimeoutError:
            raise RedisTimeoutError(
                f"Redis at {address} did not answer within {deadline_seconds:g} s"
            ) from None
        return f"redis {info.get('redis_version', '?')} at {address}"

    return probe


def service_health_probe(channel: grpc.aio.Channel, service: str, address: str, timeout: float) -> Probe:
    async def probe() -> str:
        try:
            status = await check_health(channel, service, deadline_seconds=timeout)
        except grpc.aio.AioRpcError as error:
            raise ConnectionError(f"{address}: {error.code().name}: {error.details()}") from None
        if status != "SERVING":
            raise ConnectionError(f"{address}: {service} is {status}")
        return f"{service} SERVING at {address}"

    return probe


def bigquery_probe(backend: BigQueryBackend) -> Probe | None:
    """Runs `SELECT 1` in BigQuery (or the emulator); None when neither is configured."""
    settings = backend.settings
    if settings.kind is BackendKind.NOT_CONFIGURED:
        return None
    where = (
        f"the emulator at {settings.bigquery_emulator_host}"
        if settings.kind is BackendKind.EMULATOR
        else "BigQuery"
    )

    async def probe() -> str:
        try:
            await backend.select_one()
        except Exception as error:
            raise ConnectionError(
                f"SELECT 1 in {where} (project {settings.project}) failed: {error}"
            ) from None
        return f"SELECT 1 answered by {where}, project {settings.project}"

    return probe
