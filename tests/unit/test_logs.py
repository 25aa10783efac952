"""Log lines are JSON objects carrying the request id of the call and the fields passed as `extra`."""

from __future__ import annotations

import json
import logging
import sys

from services.runtime.logs import JsonFormatter
from services.runtime.request_context import bind_request_id, reset_request_id


def _format(record_logger: logging.Logger, message: str, **extra: object) -> dict[str, object]:
    record = record_logger.makeRecord(
        record_logger.name, logging.WARNING, __file__, 1, message, (), None, extra=extra
    )
    line = JsonFormatter("jobs").format(record)
    assert "\n" not in line
    parsed: dict[str, object] = json.loads(line)
    return parsed


def test_a_line_has_time_level_service_logger_and_extra_fields() -> None:
    line = _format(logging.getLogger("services.jobs.store"), "attempt failed", job_id="j1", queue="bigquery")
    assert line["level"] == "WARNING"
    assert line["service"] == "jobs"
    assert line["logger"] == "services.jobs.store"
    assert line["message"] == "attempt failed"
    assert line["job_id"] == "j1"
    assert line["queue"] == "bigquery"
    assert str(line["time"]).endswith("Z")
    assert "request_id" not in line


def test_the_current_request_id_is_on_every_line_of_a_call() -> None:
    token = bind_request_id("req-42")
    try:
        line = _format(logging.getLogger("x"), "inside a call")
    finally:
        reset_request_id(token)
    assert line["request_id"] == "req-42"
    assert "request_id" not in _format(logging.getLogger("x"), "after the call")


def test_exceptions_are_kept_with_their_traceback() -> None:
    logger = logging.getLogger("x")
    try:
        raise ValueError("boom")
    except ValueError:
        record = logger.makeRecord("x", logging.ERROR, __file__, 1, "failed", (), exc_info=sys.exc_info())
    line = json.loads(JsonFormatter("admin").format(record))
    assert "ValueError: boom" in line["error"]
