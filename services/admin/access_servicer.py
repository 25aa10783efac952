"""The keys and audit RPCs: proto ⇄ domain (`services.access.keys`, `services.access.audit`), nothing more."""

from __future__ import annotations

import grpc
from google.protobuf import timestamp_pb2

from services.access.audit import AuditEntry, AuditLog
from services.access.keys import ApiKey, KeyStore
from switchboard.admin.v1 import audit_pb2, audit_pb2_grpc, keys_pb2, keys_pb2_grpc

DEFAULT_AUDIT_PAGE = 50


class KeysServicer(keys_pb2_grpc.KeysServiceServicer):
    def __init__(self, keys: KeyStore) -> None:
        self._keys = keys

    async def CreateKey(
        self, request: keys_pb2.CreateKeyRequest, context: grpc.aio.ServicerContext
    ) -> keys_pb2.CreateKeyResponse:
        key, secret = await self._keys.create(
            request.name, list(request.scopes), rate_limit_rule=request.rate_limit_rule
        )
        return keys_pb2.CreateKeyResponse(key=_key_to_proto(key), secret=secret)

    async def ListKeys(
        self, request: keys_pb2.ListKeysRequest, context: grpc.aio.ServicerContext
    ) -> keys_pb2.ListKeysResponse:
        return keys_pb2.ListKeysResponse(keys=[_key_to_proto(key) for key in await self._keys.list()])

    async def DeleteKey(
        self, request: keys_pb2.DeleteKeyRequest, context: grpc.aio.ServicerContext
    ) -> keys_pb2.DeleteKeyResponse:
        await self._keys.revoke(request.name)
        return keys_pb2.DeleteKeyResponse()


class AuditServicer(audit_pb2_grpc.AuditServiceServicer):
    def __init__(self, audit: AuditLog) -> None:
        self._audit = audit

    async def ListAuditEntries(
        self, request: audit_pb2.ListAuditEntriesRequest, context: grpc.aio.ServicerContext
    ) -> audit_pb2.ListAuditEntriesResponse:
        entries, token = await self._audit.list(
            page_size=request.page_size or DEFAULT_AUDIT_PAGE, page_token=request.page_token
        )
        return audit_pb2.ListAuditEntriesResponse(
            entries=[_entry_to_proto(entry) for entry in entries], next_page_token=token
        )


def _key_to_proto(key: ApiKey) -> keys_pb2.ApiKey:
    created = timestamp_pb2.Timestamp()
    created.FromMilliseconds(key.create_time_ms)
    return keys_pb2.ApiKey(
        name=key.name,
        scopes=sorted(key.scopes),
        create_time=created,
        rate_limit_rule=key.rate_limit_rule,
        seeded=key.seeded,
    )


def _entry_to_proto(entry: AuditEntry) -> audit_pb2.AuditEntry:
    time = timestamp_pb2.Timestamp()
    time.FromMilliseconds(entry.time_ms)
    return audit_pb2.AuditEntry(
        time=time,
        principal=entry.principal,
        operation=entry.operation,
        target=entry.target,
        outcome=entry.outcome.value,
        source=entry.source,
        detail=entry.detail,
    )
