"""Every domain error maps to one gRPC status, with google.rpc details a client can act on."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

import grpc
import pytest
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2

from services.runtime import errors
from services.runtime.status import ERROR_DOMAIN, status_code_for, to_rpc_status


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (errors.InvalidArgumentError("bad"), grpc.StatusCode.INVALID_ARGUMENT),
        (errors.NotFoundError("gone"), grpc.StatusCode.NOT_FOUND),
        (errors.ConflictError("stale"), grpc.StatusCode.ABORTED),
        (errors.FailedPreconditionError("completed"), grpc.StatusCode.FAILED_PRECONDITION),
        (errors.UnavailableError("redis down"), grpc.StatusCode.UNAVAILABLE),
        (errors.RetryableError("flaky"), grpc.StatusCode.UNAVAILABLE),
        (errors.NonRetryableError("broken"), grpc.StatusCode.FAILED_PRECONDITION),
        (errors.SwitchboardError("odd"), grpc.StatusCode.UNKNOWN),
    ],
)
def test_each_error_kind_has_its_code(error: errors.SwitchboardError, code: grpc.StatusCode) -> None:
    assert status_code_for(error) is code
    assert to_rpc_status(error).code == code.value[0]


M = TypeVar("M", bound=Message)


def _detail(details: Iterable[any_pb2.Any], message_type: type[M]) -> M:
    for packed in details:
        if packed.TypeName() == message_type.DESCRIPTOR.full_name:
            unpacked = message_type()
            packed.Unpack(unpacked)
            return unpacked
    raise AssertionError(f"no {message_type.__name__} in details")


def test_invalid_argument_carries_field_violations_and_error_info() -> None:
    error = errors.InvalidArgumentError.for_field("queue", "unknown queue 'x'; use one of: analytics")
    status = to_rpc_status(error)
    assert status.message == "queue: unknown queue 'x'; use one of: analytics"
    bad_request = _detail(status.details, error_details_pb2.BadRequest)
    assert [(v.field, v.description) for v in bad_request.field_violations] == [
        ("queue", "unknown queue 'x'; use one of: analytics")
    ]
    info = _detail(status.details, error_details_pb2.ErrorInfo)
    assert info.reason == "INVALID_ARGUMENT"
    assert info.domain == ERROR_DOMAIN


def test_unavailable_carries_retry_info() -> None:
    status = to_rpc_status(errors.UnavailableError("redis down", retry_after_seconds=1.5))
    retry = _detail(status.details, error_details_pb2.RetryInfo)
    assert retry.retry_delay.ToMilliseconds() == 1500


def test_reason_and_metadata_can_be_specific() -> None:
    error = errors.NotFoundError("no job j1", reason="JOB_NOT_FOUND", metadata={"job_id": "j1"})
    info = _detail(to_rpc_status(error).details, error_details_pb2.ErrorInfo)
    assert info.reason == "JOB_NOT_FOUND"
    assert dict(info.metadata) == {"job_id": "j1"}


def test_job_errors_say_whether_to_retry() -> None:
    assert errors.RetryableError("x").retryable is True
    assert errors.NonRetryableError("x").retryable is False
    assert isinstance(errors.NonRetryableError("x"), errors.JobError)
