"""The audit detail of an allowed admin call: what it asked and the counts it answered, for every admin
RPC, and never what an answer holds besides counts (a new key's secret)."""

from __future__ import annotations

from google.protobuf import descriptor_pool, message_factory
from google.protobuf.message import Message

from services.access.scopes import REQUIREMENTS, Scope
from services.runtime.call_scope import _summary
from switchboard.admin.v1 import audit_pb2, keys_pb2, settings_pb2  # noqa: F401 - their services
from switchboard.jobs.v1 import jobs_pb2
from switchboard.ratelimit.v1 import ratelimit_pb2  # noqa: F401 - its service


def test_every_admin_rpc_gets_a_detail() -> None:
    pool = descriptor_pool.Default()
    admin = [name for name, need in REQUIREMENTS.items() if need is Scope.ADMIN]
    assert admin
    for name in admin:
        service_name, method_name = name.strip("/").split("/")
        method = pool.FindServiceByName(service_name).methods_by_name[method_name]
        request = message_factory.GetMessageClass(method.input_type)()
        response = message_factory.GetMessageClass(method.output_type)()
        _fill(request)
        _fill(response)
        _summary(request, response)  # never raises, whatever the messages hold


def _fill(message: Message) -> None:
    """Every singular scalar field of `message` set, so the summary reads each kind of field."""
    for field in message.DESCRIPTOR.fields:
        if field.is_repeated or field.type == field.TYPE_MESSAGE:
            continue
        if field.type == field.TYPE_BOOL:
            setattr(message, field.name, True)
        elif field.type == field.TYPE_STRING:
            setattr(message, field.name, "x")
        elif field.type == field.TYPE_ENUM and field.enum_type is not None:
            setattr(message, field.name, field.enum_type.values[-1].number)
        elif field.type in {field.TYPE_INT32, field.TYPE_INT64, field.TYPE_UINT32, field.TYPE_UINT64}:
            setattr(message, field.name, 1)


def test_the_detail_says_what_was_asked_and_done_but_no_secret() -> None:
    bulk = jobs_pb2.BulkJobActionRequest(action=jobs_pb2.BULK_ACTION_RETRY)
    bulk.filter.payload_text = "invoice"
    detail = _summary(bulk, jobs_pb2.BulkJobActionResponse(affected=3, more_remain=True))
    assert "BULK_ACTION_RETRY" in detail and "invoice" in detail
    assert "affected: 3" in detail and "more_remain: true" in detail
    created = keys_pb2.CreateKeyResponse(secret="s3cr3t-value-never-logged")
    created.key.name = "billing"
    detail = _summary(keys_pb2.CreateKeyRequest(name="billing", scopes=["jobs:read"]), created)
    assert "billing" in detail and "s3cr3t" not in detail


def test_a_long_request_is_cut_short() -> None:
    request = jobs_pb2.BulkJobActionRequest(ids=[f"job-{i}" for i in range(500)])
    assert len(_summary(request, jobs_pb2.BulkJobActionResponse())) < 400
