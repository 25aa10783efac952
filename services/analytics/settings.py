"""The analytics service's settings, and those its tasks read in a worker process."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.runtime.settings import PeerAddresses, RedisSettings, ServiceSettings

MIB = 1024 * 1024


class AnalyticsLimits(BaseSettings):
    """What one ingested batch may hold, where analytics keeps its keys, and how long batches stay."""

    model_config = SettingsConfigDict(env_prefix="ANALYTICS_", extra="ignore", frozen=True)

    key_prefix: str = Field(
        default="sb:analytics", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$"
    )
    max_events_per_batch: int = Field(default=1000, ge=1, le=10_000)
    max_batch_bytes: int = Field(default=MIB, ge=1024, le=4 * MIB, description="One call's events, encoded.")
    max_name_length: int = Field(default=128, ge=1, le=256)
    max_user_id_length: int = Field(default=256, ge=1, le=1024)
    max_properties_bytes: int = Field(default=16 * 1024, ge=2, le=MIB, description="One event's, as JSON.")
    max_properties_depth: int = Field(default=8, ge=1, le=32, description="Nesting of objects and lists.")
    max_future_skew_seconds: int = Field(default=300, ge=0, le=86_400)
    max_event_names: int = Field(default=1000, ge=1, le=100_000, description="Distinct event names kept.")
    max_query_buckets: int = Field(default=1000, ge=1, le=10_000)
    batch_ttl_seconds: int = Field(
        default=7 * 86_400,
        ge=60,
        le=30 * 86_400,
        description="How long an accepted batch's events wait for their jobs; a backlog older is lost.",
    )
    applied_marker_ttl_seconds: int = Field(
        default=30 * 86_400,
        ge=60,
        le=365 * 86_400,
        description="How long a batch id is remembered as counted (a re-sent batch id is not counted again).",
    )
    export_enabled: bool = Field(
        default=False,
        description="Also submit an analytics.export job per batch (ratelimit queue) writing it to BigQuery.",
    )
    export_dataset: str = Field(default="switchboard_analytics", pattern=r"^[A-Za-z0-9_]{1,1024}$")
    export_table: str = Field(default="events", pattern=r"^[A-Za-z0-9_]{1,1024}$")
    export_rows_per_insert: int = Field(
        default=500, ge=1, le=10_000, description="Rows per streaming insert (BigQuery advises about 500)."
    )
    settings_reread_seconds: float = Field(
        default=5.0, gt=0, le=300, description="How often the run-time settings are re-read anyway."
    )


class AnalyticsSettings(ServiceSettings):
    grpc_port: int = Field(default=50054, ge=0, le=65535)
    jobs_key_prefix: str = Field(default="sb", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    peers: PeerAddresses = Field(default_factory=PeerAddresses)
    analytics: AnalyticsLimits = Field(default_factory=AnalyticsLimits)


class AnalyticsTaskSettings(BaseSettings):
    """What the analytics tasks read in a worker process (which has no analytics service settings)."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    jobs_key_prefix: str = Field(default="sb", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    redis: RedisSettings = Field(default_factory=RedisSettings)
    analytics: AnalyticsLimits = Field(default_factory=AnalyticsLimits)
