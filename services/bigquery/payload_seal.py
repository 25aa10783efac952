"""A seal on a `bigquery.query` job's payload: proof that the bigquery service validated it.

Anyone who may submit jobs could submit a `bigquery.query` job directly through the jobs API, past the SQL
guard. SubmitQuery seals the payload it validated (an HMAC-SHA256 under the deployment's service key,
which the bigquery service and the workers share); the task trusts a payload whose seal verifies. One
without a valid seal is checked again by the task itself, as read-only SQL on the default dataset alone.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

SEAL_FIELD = "seal"


def _normalized(value: Any) -> Any:
    # The payload travels as a protobuf Struct, whose numbers are doubles: 5 comes back as 5.0.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {str(key): _normalized(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_normalized(item) for item in value]
    return value


def _canonical(payload: Mapping[str, Any]) -> bytes:
    unsealed = {key: _normalized(value) for key, value in payload.items() if key != SEAL_FIELD}
    return json.dumps(unsealed, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def seal(payload: Mapping[str, Any], service_key: str) -> str:
    return hmac.new(service_key.encode(), _canonical(payload), hashlib.sha256).hexdigest()


def sealed(payload: Mapping[str, Any], service_key: str | None) -> dict[str, Any]:
    """`payload` with its seal (unchanged when no service key is configured)."""
    if not service_key:
        return dict(payload)
    return {**payload, SEAL_FIELD: seal(payload, service_key)}


def verifies(payload: Mapping[str, Any], service_key: str | None) -> bool:
    given = payload.get(SEAL_FIELD)
    if not service_key or not isinstance(given, str):
        return False
    return hmac.compare_digest(given, seal(payload, service_key))
