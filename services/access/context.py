"""The principal of the call being served, bound by the call scope once it checked the credentials."""

from __future__ import annotations

import contextvars

from services.access.principal import Principal, PrincipalKind

_current: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("principal", default=None)
_UNKNOWN = Principal(PrincipalKind.ANONYMOUS, "unknown")


def current_principal() -> Principal:
    """Who the current call is from (anonymous when no check ran, e.g. in a unit test)."""
    return _current.get() or _UNKNOWN


def bind_principal(principal: Principal) -> contextvars.Token[Principal | None]:
    return _current.set(principal)


def reset_principal(token: contextvars.Token[Principal | None]) -> None:
    _current.reset(token)
