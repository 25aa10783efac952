"""GetQueryResults page tokens: BigQuery's own token, wrapped so that one we did not issue is refused
with 400 before it reaches BigQuery."""

from __future__ import annotations

import base64
import binascii

from services.runtime.errors import InvalidArgumentError

_PREFIX = "bq1."
MAX_TOKEN_CHARS = 2048


def encode(bigquery_token: str | None) -> str:
    if not bigquery_token:
        return ""
    return _PREFIX + base64.urlsafe_b64encode(bigquery_token.encode()).decode().rstrip("=")


def decode(token: str) -> str | None:
    """BigQuery's token inside `token` (None for the first page); a token we did not issue → 400."""
    if not token:
        return None
    bad = InvalidArgumentError.for_field(
        "page_token", "not a page token this API gave; pass next_page_token from the previous page, or none"
    )
    if len(token) > MAX_TOKEN_CHARS or not token.startswith(_PREFIX):
        raise bad
    body = token[len(_PREFIX) :]
    try:
        decoded = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise bad from None
    if not decoded or not decoded.isprintable():
        raise bad
    return decoded
