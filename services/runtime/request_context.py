"""The request id of the call being served, carried through `contextvars` to logs and outgoing calls."""

from __future__ import annotations

import contextvars
import os

REQUEST_ID_HEADER = "x-request-id"

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


def current_request_id() -> str | None:
    return _request_id.get()


def new_request_id() -> str:
    return os.urandom(16).hex()


def bind_request_id(request_id: str) -> contextvars.Token[str | None]:
    """Makes `request_id` current until `reset_request_id(token)`."""
    return _request_id.set(request_id)


def reset_request_id(token: contextvars.Token[str | None]) -> None:
    _request_id.reset(token)
