"""The check every RPC passes before its servicer runs: who is calling (authenticate), may they (authorize).

The call scope hands it what the call carries (`Credentials`: the `authorization`, `x-api-key` and
service-key metadata, and where the call came from) and gets the principal back or a refusal that says
what to send. Only credentials verified here count: no header that merely claims an identity is read.
The gateway's authorizer uses the same `Guard`, so both checks are one code.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from services.access.credentials import AdminCredentials, parse_basic
from services.access.keys import KeyCache
from services.access.principal import Principal, PrincipalKind, anonymous
from services.access.scopes import PUBLIC, REQUIREMENTS, Requirement, Scope
from services.runtime.errors import PermissionDeniedError, UnauthenticatedError

SERVICE_KEY_HEADER = "x-switchboard-service-key"
API_KEY_HEADER = "x-api-key"
FORWARDED_FOR_HEADER = "x-forwarded-for"
MIN_SERVICE_KEY_LENGTH = 24


MAX_ADDRESS_LENGTH = 64
"""An address is at most 45 characters (IPv6 with an IPv4 tail); a longer last entry is cut to this."""


def gateway_client_address(forwarded_for: str) -> str:
    """The client address the gateway saw: the last `x-forwarded-for` entry, the one Envoy appends (the
    ones before it are the client's to write, so the header is split from its end, never cut first)."""
    return forwarded_for.rsplit(",", 1)[-1].strip()[:MAX_ADDRESS_LENGTH]


# What a service may do on another's behalf (workers read the rules; analytics submits jobs): everything
# but administration.
SERVICE_SCOPES = frozenset(scope for scope in Scope if scope is not Scope.ADMIN)


@dataclass(frozen=True)
class Credentials:
    """What one call presents; empty strings where it sent nothing."""

    authorization: str = ""
    api_key: str = ""
    service_key: str = ""
    source: str = ""


class Guard:
    def __init__(
        self,
        *,
        admin: AdminCredentials,
        keys: KeyCache | None,
        service_key: str | None,
        require_api_keys: bool,
    ) -> None:
        if service_key is not None and len(service_key) < MIN_SERVICE_KEY_LENGTH:
            raise ValueError(
                f"SWITCHBOARD_SERVICE_KEY must be at least {MIN_SERVICE_KEY_LENGTH} random characters "
                "(e.g. `openssl rand -hex 32`)"
            )
        self._admin = admin
        self._keys = keys
        self._service_key = service_key.encode() if service_key else None
        self.require_api_keys = require_api_keys

    @staticmethod
    def requirement(method: str) -> Requirement:
        """What `method` needs; a method missing from the table needs admin (closed by default)."""
        return REQUIREMENTS.get(method, Scope.ADMIN)

    def authenticate(self, credentials: Credentials) -> Principal:
        """The caller's principal; anonymous when it sent nothing; refused when what it sent is wrong."""
        if credentials.service_key:
            if self._service_key is None or not hmac.compare_digest(
                credentials.service_key.encode(), self._service_key
            ):
                raise UnauthenticatedError(
                    f"the {SERVICE_KEY_HEADER} is not this deployment's SWITCHBOARD_SERVICE_KEY",
                    reason="BAD_SERVICE_KEY",
                )
            return Principal(PrincipalKind.SERVICE, "internal", SERVICE_SCOPES)
        if credentials.api_key:
            key = self._keys.lookup(credentials.api_key) if self._keys is not None else None
            if key is None:
                raise UnauthenticatedError(
                    "the x-api-key is unknown or revoked: ask an admin for a key (POST /api/keys)",
                    reason="BAD_API_KEY",
                )
            return Principal(PrincipalKind.API_KEY, key.name, key.scopes, key.rate_limit_rule)
        if credentials.authorization:
            login = parse_basic(credentials.authorization)
            if login is None or not self._admin.verify(*login):
                raise UnauthenticatedError(
                    "wrong admin user or password: send `Authorization: Basic base64(user:password)` "
                    "with SWITCHBOARD_ADMIN_USER and its password",
                    reason="BAD_ADMIN_CREDENTIALS",
                )
            return Principal(PrincipalKind.ADMIN, login[0], frozenset({Scope.ADMIN}))
        return anonymous(credentials.source)

    def authorize(self, method: str, principal: Principal) -> None:
        """Refuses `principal` the call to `method`, with what to send instead; passes silently otherwise."""
        need = self.requirement(method)
        if need == PUBLIC:
            return
        assert isinstance(need, Scope)
        anonymous_caller = principal.kind is PrincipalKind.ANONYMOUS
        if need is Scope.ADMIN:
            if anonymous_caller:
                raise UnauthenticatedError(
                    f"{method} is an admin operation: send admin credentials (HTTP Basic) or an "
                    "x-api-key with the `admin` scope",
                    reason="ADMIN_CREDENTIALS_REQUIRED",
                )
            if not principal.has(Scope.ADMIN):
                raise PermissionDeniedError(
                    f"{method} is an admin operation and {principal.label} has no `admin` scope",
                    reason="ADMIN_REQUIRED",
                )
            return
        if anonymous_caller:
            if self.require_api_keys:
                raise UnauthenticatedError(
                    f"{method} needs an x-api-key with the `{need.value}` scope",
                    reason="API_KEY_REQUIRED",
                    metadata={"scope": need.value},
                )
            return
        if not principal.has(need):
            raise PermissionDeniedError(
                f"{principal.label} lacks the `{need.value}` scope that {method} needs: "
                "use a key that has it",
                reason="SCOPE_REQUIRED",
                metadata={"scope": need.value},
            )

    def admit(self, method: str, credentials: Credentials) -> Principal:
        """The principal `method` runs as, or the refusal.

        An open call (a public RPC; a scoped one while keys are not required) is never refused: in open
        mode a client's `x-api-key` may be any value (it is only its rate-limit identity), so credentials
        that do not verify leave it anonymous.
        """
        need = self.requirement(method)
        if need == PUBLIC or (need is not Scope.ADMIN and not self.require_api_keys):
            try:
                return self.authenticate(credentials)
            except UnauthenticatedError:
                return anonymous(credentials.source)
        principal = self.authenticate(credentials)
        self.authorize(method, principal)
        return principal
