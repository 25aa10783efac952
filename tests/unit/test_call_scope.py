"""The call scope: what it refuses to wrap, and the status each kind of failure becomes.

Redis failing a call, in any of the ways it can, is UNAVAILABLE with a message that says to retry (never
INTERNAL), and a call that needs Redis is cut at its deadline. The servicer context here is a stand-in
that records how the call was ended, as grpc.aio's does by raising from `abort`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import Any, NoReturn

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2
from redis.exceptions import (
    AuthenticationError,
    BusyLoadingError,
    NoScriptError,
    ReadOnlyError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from services.runtime.call_scope import with_call_scope
from switchboard.jobs.v1 import jobs_pb2

JOBS = jobs_pb2.DESCRIPTOR.services_by_name["JobsService"]


class _Health:
    async def Check(self, request: object, context: object) -> object:
        return request

    async def List(self, request: object, context: object) -> object:
        return request

    async def Watch(self, request: object, context: object) -> object:
        return request


class _Ended(Exception):
    """How the stand-in context ends a call, as grpc.aio's `abort` does with its own exception."""

    def __init__(self, code: grpc.StatusCode, details: str, trailing_metadata: Sequence[Any]) -> None:
        super().__init__(code, details)
        self.code = code
        self.details = details
        self.trailing_metadata = trailing_metadata

    def rich_status(self) -> status_pb2.Status:
        status = status_pb2.Status()
        for key, value in self.trailing_metadata:
            if key == "grpc-status-details-bin":
                status.ParseFromString(value)
        return status


class _Context:
    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return (("x-request-id", "req-1"),)

    async def abort(
        self, code: grpc.StatusCode, details: str = "", trailing_metadata: Sequence[Any] = ()
    ) -> NoReturn:
        raise _Ended(code, details, trailing_metadata)


class _Jobs:
    """A JobsService whose every RPC raises what it is given, or takes as long as it is told."""

    def __init__(self, raises: BaseException | None = None, takes_seconds: float = 0.0) -> None:
        self._raises = raises
        self._takes = takes_seconds

    def __getattr__(self, name: str) -> Any:
        async def rpc(request: object, context: object) -> str:
            await asyncio.sleep(self._takes)
            if self._raises is not None:
                raise self._raises
            return "answered"

        return rpc


async def _ended(servicer: _Jobs, *, deadline_seconds: float | None = None) -> _Ended:
    if deadline_seconds is None:
        scoped = with_call_scope(servicer, JOBS)
    else:
        scoped = with_call_scope(servicer, JOBS, deadline_seconds=deadline_seconds)
    with pytest.raises(_Ended) as ended:
        await scoped.GetJobStatus(jobs_pb2.GetJobStatusRequest(id="j1"), _Context())
    return ended.value


def _details(ended: _Ended) -> tuple[str, float | None]:
    """The ErrorInfo reason and the RetryInfo delay (seconds) of an ended call."""
    reason, retry_after = "", None
    for detail in ended.rich_status().details:
        info, retry = error_details_pb2.ErrorInfo(), error_details_pb2.RetryInfo()
        if detail.Unpack(info):
            reason = info.reason
        elif detail.Unpack(retry):
            retry_after = retry.retry_delay.ToNanoseconds() / 1e9
    return reason, retry_after


def test_a_streaming_rpc_is_refused_at_registration() -> None:
    health = health_pb2.DESCRIPTOR.services_by_name["Health"]  # Watch streams its answers
    with pytest.raises(TypeError, match=r"/grpc.health.v1.Health/Watch streams"):
        with_call_scope(_Health(), health)


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        (
            RedisConnectionError("Error 111 connecting to localhost:6379. Connection refused."),
            "REDIS_UNREACHABLE",
        ),
        (RedisConnectionError("Connection closed by server."), "REDIS_UNREACHABLE"),
        (AuthenticationError("invalid username-password pair"), "REDIS_UNREACHABLE"),
        (RedisTimeoutError("Timeout reading from socket"), "REDIS_TIMEOUT"),
        (TimeoutError(), "REDIS_TIMEOUT"),
        (BusyLoadingError("Redis is loading the dataset in memory"), "REDIS_UNAVAILABLE"),
        (ReadOnlyError("You can't write against a read only replica."), "REDIS_UNAVAILABLE"),
        (NoScriptError("No matching script."), "REDIS_UNAVAILABLE"),
        (ResponseError("OOM command not allowed when used memory > 'maxmemory'."), "REDIS_UNAVAILABLE"),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else value,
)
async def test_a_redis_failure_is_unavailable_with_a_message_to_retry(
    failure: BaseException, reason: str
) -> None:
    ended = await _ended(_Jobs(raises=failure))
    assert ended.code is grpc.StatusCode.UNAVAILABLE
    assert "Redis" in ended.details and "retry" in ended.details
    assert str(failure) not in ended.details or not str(failure), "Redis's own words stay inside"
    assert _details(ended) == (reason, 1.0)


async def test_a_call_that_outlives_its_redis_deadline_is_unavailable_at_the_deadline() -> None:
    started = time.monotonic()
    ended = await _ended(_Jobs(takes_seconds=30), deadline_seconds=0.1)
    assert time.monotonic() - started < 1.0
    assert ended.code is grpc.StatusCode.UNAVAILABLE
    assert ended.details == "Redis did not answer within this call's deadline of 0.1 s; retry in a moment"
    assert _details(ended) == ("REDIS_DEADLINE_EXCEEDED", 1.0)


async def test_a_call_within_its_deadline_answers_and_one_without_a_deadline_is_not_cut() -> None:
    scoped = with_call_scope(_Jobs(takes_seconds=0.01), JOBS, deadline_seconds=5)
    assert await scoped.GetJobStatus(jobs_pb2.GetJobStatusRequest(), _Context()) == "answered"
    unbounded = with_call_scope(_Jobs(takes_seconds=0.2), JOBS, deadline_seconds=None)
    assert await unbounded.GetJobStatus(jobs_pb2.GetJobStatusRequest(), _Context()) == "answered"


async def test_anything_else_is_still_internal_with_the_request_id() -> None:
    ended = await _ended(_Jobs(raises=KeyError("secret")), deadline_seconds=1)
    assert ended.code is grpc.StatusCode.INTERNAL
    assert "secret" not in ended.details
    assert "req-1" in ended.details


def test_a_deadline_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        with_call_scope(_Jobs(), JOBS, deadline_seconds=0)


async def test_a_call_cancelled_by_its_client_stays_cancelled_not_unavailable() -> None:
    scoped = with_call_scope(_Jobs(takes_seconds=30), JOBS, deadline_seconds=5)
    call = asyncio.create_task(scoped.GetJobStatus(jobs_pb2.GetJobStatusRequest(), _Context()))
    await asyncio.sleep(0.01)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call


class _SwallowsOneCancellation:
    """A JobsService whose Redis client turns the first cancellation into a retry, as redis-py does when
    a cancellation lands just as its own socket timeout fires (asyncio.timeout on Python 3.11)."""

    def __getattr__(self, name: str) -> Any:
        async def rpc(request: object, context: object) -> str:
            with contextlib.suppress(asyncio.CancelledError):  # taken for its own timeout, and retried
                await asyncio.sleep(30)
            await asyncio.sleep(30)
            return "answered"

        return rpc


async def test_a_call_that_swallows_the_deadlines_cancellation_is_still_cut_at_the_deadline() -> None:
    started = time.monotonic()
    ended = await _ended(_SwallowsOneCancellation(), deadline_seconds=0.1)  # type: ignore[arg-type]
    assert time.monotonic() - started < 1.0, "cut again, not left to run its retries (seen: 3.2 s)"
    assert ended.code is grpc.StatusCode.UNAVAILABLE
    assert _details(ended) == ("REDIS_DEADLINE_EXCEEDED", 1.0)
