"""Who may use the dashboard and how a write is told from a forged one.

Looking needs admin credentials (HTTP Basic, as the admin API; an `admin`-scoped key works too), checked
by the same `Guard` every service runs. A write also needs a same-origin request (its Origin, else its
Referer, names the host it was sent to) and the CSRF token of the page it came from, which is bound to
the credentials that loaded it: a page of another site can neither read the token nor send the header.
No aiohttp in here: the views hand over the headers.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from services.access.guard import API_KEY_HEADER, Credentials, Guard
from services.access.principal import Principal
from services.access.scopes import Scope
from services.runtime.errors import UnauthenticatedError

CHALLENGE = 'Basic realm="Switchboard dashboard", charset="UTF-8"'
MAX_HEADER = 4096


# What the gateway's authorizer checks a dashboard request as: a method no REQUIREMENTS entry names, so it
# needs admin credentials (closed by default), before the request reaches the dashboard's own check.
GATEWAY_METHOD = "/switchboard.admin.v1.Dashboard/Use"
GATEWAY_ROUTES = tuple(
    (verb, path, GATEWAY_METHOD)
    for verb in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
    for path in ("/api/bull-board/", "/api/bull-board/{path=**}")
)


class Refusal(Exception):
    """An HTTP refusal: status and a message that says what to do."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Operator:
    """The admin using the dashboard, and what the dashboard forwards on their behalf."""

    principal: Principal
    metadata: tuple[tuple[str, str], ...]
    """The credentials they sent, as gRPC metadata: every call is made as them."""
    csrf_token: str


class DashboardAccess:
    def __init__(self, guard: Guard, *, secret: bytes | None = None) -> None:
        self._guard = guard
        # Tokens of one process (or, given the service key, of every replica of a deployment).
        self._secret = secret or secrets.token_bytes(32)

    def operator(self, headers: Mapping[str, str], source: str) -> Operator:
        """The admin behind a request; `Refusal(401)` without valid credentials, 403 for a non-admin."""
        authorization = headers.get("authorization", "")[:MAX_HEADER]
        api_key = headers.get(API_KEY_HEADER, "")[:MAX_HEADER]
        if not authorization and not api_key:
            raise Refusal(401, "log in with the admin user and password (SWITCHBOARD_ADMIN_USER)")
        try:
            principal = self._guard.authenticate(
                Credentials(authorization=authorization, api_key=api_key, source=source[:256])
            )
        except UnauthenticatedError as error:
            raise Refusal(401, error.message) from None
        if not principal.has(Scope.ADMIN):
            raise Refusal(403, f"the dashboard is for admins and {principal.label} is none")
        metadata = (("authorization", authorization),) if authorization else ((API_KEY_HEADER, api_key),)
        return Operator(principal, metadata, self.csrf_token(authorization or api_key))

    def csrf_token(self, credential: str) -> str:
        return hmac.new(self._secret, credential.encode(), hashlib.sha256).hexdigest()[:40]

    def check_write(self, operator: Operator, headers: Mapping[str, str], token: str) -> None:
        """Refuses (403) a write that is cross-site or carries no token of this operator's pages."""
        host = headers.get("host", "")
        origin = headers.get("origin", "") or headers.get("referer", "")
        if not origin or origin == "null" or urlsplit(origin).netloc != host:
            raise Refusal(
                403, "cross-site request refused: send the form from the dashboard's own page (Origin)"
            )
        if not hmac.compare_digest(token.encode()[:64], operator.csrf_token.encode()):
            raise Refusal(403, "the form's CSRF token is missing or stale: reload the page and try again")


def token_secret(service_key: str | None) -> bytes | None:
    """A CSRF secret every replica shares, from the deployment's service key (None: one per process)."""
    if not service_key:
        return None
    return hmac.new(service_key.encode(), b"switchboard dashboard csrf", hashlib.sha256).digest()
