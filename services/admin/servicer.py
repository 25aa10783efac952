"""Admin RPCs: proto ⇄ domain, nothing more."""

from __future__ import annotations

import grpc
from google.protobuf import timestamp_pb2

from services.access.context import current_principal
from services.access.principal import PrincipalKind
from services.admin.connection import CheckStatus, ConnectionReport, ConnectionTester
from switchboard.admin.v1 import connection_pb2, connection_pb2_grpc, settings_pb2_grpc

_STATUS = {
    CheckStatus.PASSED: connection_pb2.CHECK_STATUS_PASSED,
    CheckStatus.FAILED: connection_pb2.CHECK_STATUS_FAILED,
    CheckStatus.NOT_CONFIGURED: connection_pb2.CHECK_STATUS_NOT_CONFIGURED,
}


class ConnectionServicer(connection_pb2_grpc.ConnectionServiceServicer):
    def __init__(self, tester: ConnectionTester) -> None:
        self._tester = tester

    async def TestConnection(
        self, request: connection_pb2.TestConnectionRequest, context: grpc.aio.ServicerContext
    ) -> connection_pb2.TestConnectionResponse:
        report = _report_to_proto(await self._tester.run())
        if current_principal().kind is PrincipalKind.ANONYMOUS:
            # Versions, addresses and error texts help an attacker: the unauthenticated get pass/fail only.
            for check in report.checks:
                check.detail = "" if check.ok else "failed (sign in to see why)"
        return report


class SettingsServicer(settings_pb2_grpc.SettingsServiceServicer):
    """Settings storage lands with the admin issue; until then every RPC answers UNIMPLEMENTED."""


def _report_to_proto(report: ConnectionReport) -> connection_pb2.TestConnectionResponse:
    checked_at = timestamp_pb2.Timestamp()
    checked_at.FromDatetime(report.checked_at)
    return connection_pb2.TestConnectionResponse(
        ok=report.ok,
        checked_at=checked_at,
        checks=[
            connection_pb2.ConnectionCheck(
                name=check.name,
                ok=check.ok,
                latency_ms=check.latency_ms,
                detail=check.detail,
                status=_STATUS[check.status],
            )
            for check in report.checks
        ],
    )
