"""Renders Envoy's configuration from `envoy.yaml.tmpl` and the gateway's settings."""

from __future__ import annotations

import json
import string
from pathlib import Path

from services.gateway.reflection.body_sink import MAX_DRAINED_BYTES
from services.gateway.settings import API_KEY_MAX_LENGTH, GatewaySettings
from services.runtime.message_size import MAX_BODY_LIMIT_BYTES, describe

TEMPLATE = Path(__file__).with_name("envoy.yaml.tmpl")


def body_limits(settings: GatewaySettings) -> dict[str, int]:
    """Request-body limit per kind of route, in bytes: what Envoy enforces (413 above it)."""
    return {"default": settings.body_limit_bytes, "analytics": settings.analytics_body_limit_bytes}


def render(settings: GatewaySettings) -> str:
    """The Envoy config for `settings`; every placeholder of the template must be filled."""
    limits = body_limits(settings)
    values = {
        "LISTEN_ADDRESS": settings.listen_address,
        "LISTEN_PORT": str(settings.port),
        "ADMIN_PORT": str(settings.admin_port),
        "DESCRIPTOR_PATH": str(Path(settings.descriptor_path).resolve()),
        "RATELIMIT_TIMEOUT": f"{settings.ratelimit_timeout_ms / 1000:g}s",
        "RATELIMIT_FAIL_CLOSED": "true" if settings.ratelimit_fail_closed else "false",
        "BODY_LIMIT": str(limits["default"]),
        "BODY_LIMIT_TEXT": describe(limits["default"]),
        "ANALYTICS_BODY_LIMIT": str(limits["analytics"]),
        "ANALYTICS_BODY_LIMIT_TEXT": describe(limits["analytics"]),
        # The transcoder's own cap never undercuts a route's limit.
        "MAX_BODY_LIMIT": str(MAX_BODY_LIMIT_BYTES),
        "GRPC_DEFAULT_TIMEOUT": f"{settings.grpc_default_timeout_seconds:g}s",
        "GRPC_MAX_TIMEOUT": f"{settings.grpc_max_timeout_seconds:g}s",
        "BACKSTOP_RPS": str(settings.backstop_requests_per_second),
        "BACKSTOP_CLIENT_RPS": str(settings.backstop_client_requests_per_second),
        "API_KEY_MAX_LENGTH": str(API_KEY_MAX_LENGTH),
        "API_KEY_MAX_PLUS_ONE": str(API_KEY_MAX_LENGTH + 1),
        "DOWNSTREAM_TLS": downstream_tls(settings),
    }
    template = TEMPLATE.read_text()
    if settings.reflection_address:
        values["REFLECTION_HOST"], reflection_port = split_address(settings.reflection_address)
        values["REFLECTION_PORT"] = str(reflection_port)
    else:
        template = without_block(template, "reflection")
    if settings.body_sink_address:
        values["BODY_SINK_HOST"], sink_port = split_address(settings.body_sink_address)
        values["BODY_SINK_PORT"] = str(sink_port)
        # Header range matches are [start, end): over the limit, up to what the sink drains.
        values["BODY_LIMIT_PLUS_ONE"] = str(limits["default"] + 1)
        values["ANALYTICS_BODY_LIMIT_PLUS_ONE"] = str(limits["analytics"] + 1)
        values["SINK_MAX_PLUS_ONE"] = str(MAX_DRAINED_BYTES + 1)
    else:
        template = without_block(template, "body_sink")
    if settings.dashboard_address:
        values["DASHBOARD_HOST"], dashboard_port = split_address(settings.dashboard_address)
        values["DASHBOARD_PORT"] = str(dashboard_port)
    else:
        template = without_block(template, "dashboard")
    for service, address in settings.peers.by_service().items():
        host, port = split_address(address)
        values[f"{service.upper()}_HOST"] = host
        # The admin service's port would clash with Envoy's own admin port placeholder.
        values["ADMIN_PORT_UPSTREAM" if service == "admin" else f"{service.upper()}_PORT"] = str(port)
    return string.Template(template).substitute(values)


def without_block(template: str, name: str) -> str:
    """`template` minus every part between the lines `# begin <name>` and `# end <name>`."""
    kept, skipping = [], False
    for line in template.splitlines(keepends=True):
        marker = line.strip()
        if marker.startswith(f"# begin {name}"):
            skipping = True
        elif marker == f"# end {name}":
            skipping = False
        elif not skipping:
            kept.append(line)
    return "".join(kept)


def downstream_tls(settings: GatewaySettings) -> str:
    """The listener's TLS transport socket (one line of YAML), or "" when no certificate is configured."""
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return ""
    context = {
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
        "common_tls_context": {
            "alpn_protocols": ["h2", "http/1.1"],
            "tls_params": {"tls_minimum_protocol_version": "TLSv1_2"},
            "tls_certificates": [
                {
                    "certificate_chain": {"filename": settings.tls_cert_file},
                    "private_key": {"filename": settings.tls_key_file},
                }
            ],
        },
    }
    # JSON is YAML: one flow mapping, whatever characters the paths hold.
    socket = {"name": "envoy.transport_sockets.tls", "typed_config": context}
    return f"transport_socket: {json.dumps(socket)}"


def split_address(address: str) -> tuple[str, int]:
    """`host:port` (or `[v6]:port`) → (host, port); a clear ValueError otherwise."""
    host, separator, port = address.rpartition(":")
    if not separator or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected host:port, got {address!r}")
    return host.strip("[]"), int(port)
