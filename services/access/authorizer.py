"""The gateway's check of a request before any service sees it: the same `Guard` the services run, on the
RPC the request's route maps to, answering what Envoy should do.

On success it names the client for the rate limiter (`CLIENT_HEADER`): the key's name for a key (so
rotating a key's secret does not reset its allowance), the admin's or service's label, and in open mode
the client's own `x-api-key` value (bounded), as before keys existed. The gateway strips the header from
every incoming request first, so only this check sets it. A key that names its own rule (its tier) also
gets `RULE_HEADER`, which the gateway's second rate-limit descriptor counts against.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from services.access.audit import AuditEntry, AuditLog, Outcome
from services.access.guard import API_KEY_HEADER, SERVICE_KEY_HEADER, Credentials, Guard
from services.access.principal import Principal, PrincipalKind
from services.access.routes import RouteMap
from services.access.scopes import Scope
from services.runtime.errors import PermissionDeniedError, SwitchboardError, UnauthenticatedError

logger = logging.getLogger(__name__)

CLIENT_HEADER = "x-switchboard-client"
RULE_HEADER = "x-switchboard-rate-rule"
MAX_CLIENT_ID = 128
REALM_CHALLENGE = 'Basic realm="Switchboard"'


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    status: int = 200
    """The HTTP status Envoy answers a refusal with (401, 403)."""
    message: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    """On success: request headers to set for the upstream. On refusal: response headers."""


class Authorizer:
    def __init__(self, guard: Guard, routes: RouteMap, audit: AuditLog | None) -> None:
        self._guard = guard
        self._routes = routes
        self._audit = audit

    async def check(self, verb: str, path: str, headers: Mapping[str, str], peer: str) -> Verdict:
        match = self._routes.match(verb, path)
        if match is None:
            # No RPC: Envoy answers it (404) without reaching a service.
            return Verdict(True)
        forwarded = headers.get("x-forwarded-for", "")
        credentials = Credentials(
            authorization=headers.get("authorization", "")[:4096],
            api_key=headers.get(API_KEY_HEADER, "")[:4096],
            service_key=headers.get(SERVICE_KEY_HEADER, "")[:4096],
            source=(forwarded.split(",")[-1].strip() if forwarded else peer)[:256],
        )
        try:
            principal = self._guard.admit(match.method, credentials)
        except (UnauthenticatedError, PermissionDeniedError) as refusal:
            if self._guard.requirement(match.method) is Scope.ADMIN:
                await self._record(match.method, match.target, credentials, refusal)
            unauthenticated = isinstance(refusal, UnauthenticatedError)
            return Verdict(
                False,
                401 if unauthenticated else 403,
                refusal.message,
                {"www-authenticate": REALM_CHALLENGE} if unauthenticated else {},
            )
        return Verdict(True, headers=_identity(principal, credentials))

    async def _record(
        self, method: str, target: str, credentials: Credentials, refusal: SwitchboardError
    ) -> None:
        if self._audit is None:
            return
        entry = AuditEntry(
            time_ms=int(time.time() * 1000),
            principal=f"anonymous:{credentials.source}",
            operation=method,
            target=target,
            outcome=Outcome.DENIED,
            source=credentials.source,
            detail=f"at the gateway: {refusal.message}",
        )
        try:
            await self._audit.record(entry)
        except Exception:  # the refusal stands whether or not the trail could be written
            logger.warning("audit entry not written", exc_info=True, extra={"method": method})


def _identity(principal: Principal, credentials: Credentials) -> dict[str, str]:
    if principal.kind is PrincipalKind.ANONYMOUS:
        # Open mode: a client may name itself with any x-api-key; otherwise its address counts.
        client = credentials.api_key[:MAX_CLIENT_ID]
        return {CLIENT_HEADER: client} if client else {}
    found = {CLIENT_HEADER: principal.label[:MAX_CLIENT_ID]}
    if principal.rate_limit_rule:
        found[RULE_HEADER] = principal.rate_limit_rule
    return found
