"""`ctx.log(...)`: the level is checked before anything is written, and the line reaches the writer."""

from __future__ import annotations

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from services.jobs.context import JobContext


async def _never(_: object) -> bool:
    raise AssertionError("not called")


async def test_log_passes_level_and_text_to_the_store() -> None:
    written: list[tuple[str, str]] = []

    async def write(level: str, message: str) -> bool:
        written.append((level, message))
        return len(written) < 2

    job = JobContext("j", "analytics", attempt=1, deliveries=1, report_progress=_never, write_log=write)
    assert await job.log("first")
    assert not await job.log("second", "error"), "False once the store did not keep the line"
    assert written == [("info", "first"), ("error", "second")]


async def test_an_unknown_level_is_refused_saying_which_exist() -> None:
    job = JobContext("j", "analytics", attempt=1, deliveries=1, report_progress=_never, write_log=None)
    with pytest.raises(ValueError, match="use one of: debug, info, warning, error"):
        await job.log("x", "fatal")


async def test_a_log_line_redis_cannot_take_does_not_fail_the_task() -> None:
    async def unreachable(level: str, message: str) -> bool:
        raise RedisConnectionError("connection refused")

    job = JobContext("j", "analytics", attempt=1, deliveries=1, report_progress=_never, write_log=unreachable)
    assert not await job.log("lost")
