"""A seal on a `bigquery.query` job's payload: proof that the bigquery service validated it.

Anyone who may submit jobs could submit a `bigquery.query` job directly through the jobs API, past the SQL
guard. SubmitQuery and RunQuery seal the payload they validated (an HMAC-SHA256 under the deployment's
service key, which the bigquery service and the workers share) together with the job's id; the task trusts a
payload whose seal verifies for the job it runs. One without a valid seal, or with a seal copied from another
job, is checked again by the task itself, as read-only SQL on the default dataset alone. (A payload is
readable with `jobs:read`: without the job id in the seal, an admin's sealed DML could be submitted again
as a new job by anyone with `jobs:write`.)
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


def _canonical(payload: Mapping[str, Any], job_id: str) -> bytes:
    unsealed = {key: _normalized(value) for key, value in payload.items() if key != SEAL_FIELD}
    document = {"job_id": job_id, "payload": unsealed}
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def seal(payload: Mapping[str, Any], service_key: str, job_id: str) -> str:
    return hmac.new(service_key.encode(), _canonical(payload, job_id), hashlib.sha256).hexdigest()


def sealed(payload: Mapping[str, Any], service_key: str | None, job_id: str) -> dict[str, Any]:
    """`payload` with its seal for the job `job_id` (unchanged when no service key is configured)."""
    if not service_key:
        return dict(payload)
    return {**payload, SEAL_FIELD: seal(payload, service_key, job_id)}


def verifies(payload: Mapping[str, Any], service_key: str | None, job_id: str) -> bool:
    given = payload.get(SEAL_FIELD)
    if not service_key or not isinstance(given, str):
        return False
    return hmac.compare_digest(given, seal(payload, service_key, job_id))
