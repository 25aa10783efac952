"""The one mapping from domain errors to gRPC status, with `google.rpc` details a client can act on."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from services.runtime import errors

ERROR_DOMAIN = "switchboard"

# Most specific first: the first class an error is an instance of decides its code.
_CODES: tuple[tuple[type[errors.SwitchboardError], grpc.StatusCode], ...] = (
    (errors.InvalidArgumentError, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.NotFoundError, grpc.StatusCode.NOT_FOUND),
    (errors.ConflictError, grpc.StatusCode.ABORTED),
    (errors.UnauthenticatedError, grpc.StatusCode.UNAUTHENTICATED),
    (errors.PermissionDeniedError, grpc.StatusCode.PERMISSION_DENIED),
    (errors.FailedPreconditionError, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.UnavailableError, grpc.StatusCode.UNAVAILABLE),
    (errors.ResourceExhaustedError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.NonRetryableError, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.JobError, grpc.StatusCode.UNAVAILABLE),
)


def status_code_for(error: errors.SwitchboardError) -> grpc.StatusCode:
    for error_class, code in _CODES:
        if isinstance(error, error_class):
            return code
    return grpc.StatusCode.UNKNOWN


def to_rpc_status(error: errors.SwitchboardError) -> status_pb2.Status:
    """The `google.rpc.Status` for `error`: code, message, ErrorInfo and the details its kind carries."""
    code = status_code_for(error)
    details = [
        error_details_pb2.ErrorInfo(reason=error.reason, domain=ERROR_DOMAIN, metadata=error.metadata),
    ]
    if isinstance(error, errors.InvalidArgumentError) and error.violations:
        details.append(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                    for v in error.violations
                ]
            )
        )
    if error.retry_after_seconds is not None:
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(error.retry_after_seconds * 1e9))
        details.append(error_details_pb2.RetryInfo(retry_delay=delay))
    packed = []
    for detail in details:
        any_detail = any_pb2.Any()
        any_detail.Pack(detail)
        packed.append(any_detail)
    return status_pb2.Status(code=_rpc_code(code), message=error.message, details=packed)


def _rpc_code(code: grpc.StatusCode) -> int:
    number: int = code.value[0]
    assert code_pb2.Code.Name(number)  # the gRPC and google.rpc numbering agree; fail loudly if not
    return number
