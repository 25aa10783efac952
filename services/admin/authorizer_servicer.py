"""Envoy's ext_authz Check: proto ⇄ `services.access.authorizer`, nothing more."""

from __future__ import annotations

import grpc
from google.rpc import code_pb2, status_pb2

from envoyauthz.v3 import external_auth_pb2, external_auth_pb2_grpc
from services.access.authorizer import CLIENT_HEADER, RULE_HEADER, Authorizer

_OVERWRITE = external_auth_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
_DENIED_CODES = {401: code_pb2.UNAUTHENTICATED, 403: code_pb2.PERMISSION_DENIED}


class AuthorizationServicer(external_auth_pb2_grpc.AuthorizationServicer):
    def __init__(self, authorizer: Authorizer) -> None:
        self._authorizer = authorizer

    async def Check(
        self, request: external_auth_pb2.CheckRequest, context: grpc.aio.ServicerContext
    ) -> external_auth_pb2.CheckResponse:
        http = request.attributes.request.http
        verdict = await self._authorizer.check(
            http.method, http.path, http.headers, request.attributes.source.address.socket_address.address
        )
        headers = [
            external_auth_pb2.HeaderValueOption(
                header=external_auth_pb2.HeaderValue(key=key, value=value), append_action=_OVERWRITE
            )
            for key, value in verdict.headers.items()
        ]
        if verdict.allowed:
            return external_auth_pb2.CheckResponse(
                status=status_pb2.Status(code=code_pb2.OK),
                ok_response=external_auth_pb2.OkHttpResponse(
                    headers=headers,
                    # Whatever the client sent under these names never reaches a service or the limiter.
                    headers_to_remove=[h for h in (CLIENT_HEADER, RULE_HEADER) if h not in verdict.headers],
                ),
            )
        return external_auth_pb2.CheckResponse(
            status=status_pb2.Status(code=_DENIED_CODES[verdict.status], message=verdict.message),
            denied_response=external_auth_pb2.DeniedHttpResponse(
                status=external_auth_pb2.HttpStatus(code=verdict.status),
                headers=headers,
                body=verdict.message,
            ),
        )
