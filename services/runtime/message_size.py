"""How large one request may be: the gateway's request-body limits and the services' gRPC message limit.

Both come from here so they cannot drift apart. Envoy refuses a body over its route's limit with 413;
the services accept a gRPC message `JSON_TO_PROTOBUF_EXPANSION` times larger than the largest body
Envoy may let through, so a request that passed the gateway is never refused by a service's own limit
(gRPC answers that with RESOURCE_EXHAUSTED, which the API keeps for rate limits).

Why a factor: the transcoder turns JSON into protobuf, and protobuf can be the larger of the two. A
`google.protobuf.Struct` payload of small numbers (`[0,0,0,...]`, 2 bytes per element in JSON) takes
11 bytes per element as `Value` messages, 5.5 times the JSON. A native gRPC body is the message itself,
so it needs no factor.
"""

from __future__ import annotations

KIB = 1024
MIB = 1024 * KIB

HEADROOM_BYTES = 64 * KIB
"""Room around a 1 MiB job payload for the rest of the request (queue, task, options, JSON spacing)."""

DEFAULT_BODY_LIMIT_BYTES = 1 * MIB + HEADROOM_BYTES
"""Every route's request-body limit unless a route has its own."""

ANALYTICS_BODY_LIMIT_BYTES = 4 * MIB + HEADROOM_BYTES
"""`/api/analytics` takes event batches."""

MAX_BODY_LIMIT_BYTES = ANALYTICS_BODY_LIMIT_BYTES
"""The largest body limit the gateway may be configured with (settings may lower limits, not raise them
past this: the services' limit is built on it)."""

JSON_TO_PROTOBUF_EXPANSION = 6
"""How much larger than its JSON a transcoded message can get (5.5 at worst, see above)."""

GRPC_MAX_MESSAGE_BYTES = JSON_TO_PROTOBUF_EXPANSION * MAX_BODY_LIMIT_BYTES
"""What a service accepts in one gRPC message (and sends): never the limit a gateway client meets."""


def describe(size_bytes: int) -> str:
    """`1114112` → `1 MiB 64 KiB`, for messages that name a limit."""
    mib, rest = divmod(size_bytes, MIB)
    kib, rest = divmod(rest, KIB)
    parts = [f"{mib} MiB" if mib else "", f"{kib} KiB" if kib else "", f"{rest} bytes" if rest else ""]
    return " ".join(part for part in parts if part) or "0 bytes"
