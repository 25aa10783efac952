"""The bigquery service's settings (the backend's own are in services/warehouse/settings.py)."""

from __future__ import annotations

from pydantic import Field

from services.runtime.settings import PeerAddresses, ServiceSettings
from services.warehouse.settings import BigQueryBackendSettings


class BigQuerySettings(ServiceSettings):
    grpc_port: int = Field(default=50053, ge=0, le=65535)
    peers: PeerAddresses = Field(default_factory=PeerAddresses)
    backend: BigQueryBackendSettings = Field(default_factory=BigQueryBackendSettings)
    # QueryService: the result cache, single flight, and the jobs it enqueues.
    jobs_key_prefix: str = Field(
        default="sb",
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.\-]+$",
        description="The prefix of the jobs store's keys: the settings document, the query cache's keys.",
    )
    query_cache_max_entry_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        le=16 * 1024 * 1024,
        description="A cached result (first page, schema, totals) as JSON at most; a larger one is served, "
        "not cached.",
    )
    query_single_flight_seconds: float = Field(
        default=120.0,
        gt=0,
        le=3600,
        description="How long a claim on an identical query's job lives: a claimant that died is "
        "forgotten after it.",
    )
    query_page_size: int = Field(
        default=500, ge=1, le=10_000, description="RunQuery's first page of rows when the request sets none."
    )
    query_max_page_size: int = Field(default=10_000, ge=1, le=100_000)
    metrics_port: int = Field(default=0, ge=0, le=65535, description="Prometheus /metrics; 0: off.")
