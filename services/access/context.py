"""The principal of the call being served, bound by the call scope once it checked the credentials, and
the credentials it verified, which a call made on the caller's behalf passes on (the callee checks them
itself: nothing is trusted for having come from a sibling)."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

from services.access.principal import Principal, PrincipalKind

_current: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("principal", default=None)
_delegated: contextvars.ContextVar[tuple[tuple[str, str], ...]] = contextvars.ContextVar(
    "delegated_credentials", default=()
)
_UNKNOWN = Principal(PrincipalKind.ANONYMOUS, "unknown")


def current_principal() -> Principal:
    """Who the current call is from (anonymous when no check ran, e.g. in a unit test)."""
    return _current.get() or _UNKNOWN


def bind_principal(principal: Principal) -> contextvars.Token[Principal | None]:
    return _current.set(principal)


def reset_principal(token: contextvars.Token[Principal | None]) -> None:
    _current.reset(token)


def delegated_credentials() -> tuple[tuple[str, str], ...]:
    """The current call's verified admin or key credentials as metadata, for a call made on its behalf;
    empty when the caller is nobody, a service, or sent nothing that verified."""
    return _delegated.get()


def bind_delegated(metadata: tuple[tuple[str, str], ...]) -> contextvars.Token[tuple[tuple[str, str], ...]]:
    return _delegated.set(metadata)


def reset_delegated(token: contextvars.Token[tuple[tuple[str, str], ...]]) -> None:
    _delegated.reset(token)


@contextlib.contextmanager
def as_the_service() -> Iterator[None]:
    """Calls made inside present the service's own identity, not the caller's credentials.

    For a service that checked its caller's scope for what it does (`bigquery:query`, `analytics:write`)
    and then does its own work on a sibling (submitting the job): the caller needs no scope of the
    sibling's (`jobs:write`), and the service is answerable for asking only for what its API allows.
    """
    token = _delegated.set(())
    try:
        yield
    finally:
        _delegated.reset(token)
