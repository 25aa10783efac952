"""The audit detail of an allowed admin call: what it asked and the counts it answered, for every admin
RPC, and never what an answer holds besides counts (a new key's secret); and only admin calls pay for it."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import descriptor_pool, message_factory, struct_pb2
from google.protobuf.message import Message

from services.access.audit import AuditEntry, AuditLog, Outcome
from services.access.credentials import AdminCredentials, basic_header
from services.access.guard import Guard
from services.access.scopes import REQUIREMENTS, Scope
from services.runtime import audit_detail
from services.runtime.audit_detail import brief
from services.runtime.audit_detail import summary as _summary
from services.runtime.call_scope import with_call_scope
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


def test_a_huge_request_is_cut_at_300_characters() -> None:
    request = jobs_pb2.BulkJobActionRequest(ids=[f"job-{i}" for i in range(200_000)])
    detail = brief(request)
    assert detail.startswith('ids: "job-0" ids: "job-1"') and detail.endswith("…") and len(detail) == 300


def test_maps_nested_messages_enums_and_bytes_read_as_text_format_does() -> None:
    document = struct_pb2.Struct()
    document.update({"queue": "analytics", "limits": {"lease_ms": 1000}})
    detail = brief(document)
    assert 'fields { key: "queue" value { string_value: "analytics" } }' in detail
    assert 'key: "limits" value { struct_value { fields { key: "lease_ms"' in detail
    assert (
        brief(jobs_pb2.BulkJobActionRequest(action=jobs_pb2.BULK_ACTION_RETRY)) == "action: BULK_ACTION_RETRY"
    )


class _Trail(AuditLog):
    def __init__(self) -> None:
        self.entries: list[AuditEntry] = []

    async def record(self, entry: AuditEntry) -> None:
        self.entries.append(entry)


class _Context:
    def __init__(self, *metadata: tuple[str, str]) -> None:
        self._metadata = metadata

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def peer(self) -> str:
        return "ipv4:127.0.0.1:5555"


class _Answers:
    def __getattr__(self, name: str) -> Any:
        async def rpc(request: object, context: object) -> Message:
            return jobs_pb2.BulkJobActionResponse(affected=2)

        return rpc


async def test_only_admin_calls_are_summarised_for_the_trail(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rendering the request was paid by every call, admin or not (64 % of the analytics service's CPU
    under ingest load, each 1,000-event batch rendered whole and then cut to 300 characters)."""
    summarised: list[Any] = []
    real = audit_detail.summary

    def counted(request: Any, result: Any) -> str:
        summarised.append(request)
        return real(request, result)

    monkeypatch.setattr(audit_detail, "summary", counted)
    password = "tR7#kq2Lx9!vB4wz"
    guard = Guard(
        admin=AdminCredentials.from_password("admin", password),
        keys=None,
        service_key=None,
        require_api_keys=False,
    )
    trail = _Trail()
    scoped = with_call_scope(
        _Answers(), jobs_pb2.DESCRIPTOR.services_by_name["JobsService"], guard=guard, audit=trail
    )
    await scoped.GetJobStatus(jobs_pb2.GetJobStatusRequest(id="j1"), _Context())
    assert summarised == [] and trail.entries == []
    admin = _Context(("authorization", basic_header("admin", password)))
    await scoped.BulkJobAction(jobs_pb2.BulkJobActionRequest(action=jobs_pb2.BULK_ACTION_RETRY), admin)
    assert len(summarised) == 1
    [entry] = trail.entries
    assert entry.outcome is Outcome.ALLOWED
    assert entry.detail == "asked action: BULK_ACTION_RETRY; answered affected: 2"
