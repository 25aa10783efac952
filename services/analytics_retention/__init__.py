"""How long analytics keeps its buckets per granularity: the run-time setting's model and its defaults.

Pure data shared by the analytics service and its tasks (which read it from the settings document) and the
admin service (which validates changes to it); neither imports the other.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

HOUR_SECONDS = 3600
DAY_SECONDS = 86_400


class AnalyticsRetention(BaseModel):
    """Seconds each granularity's buckets are kept after they end (minutes 48 h, hours 90 d, days 3 y)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    minute_retention_seconds: int = Field(default=48 * HOUR_SECONDS, ge=HOUR_SECONDS, le=30 * DAY_SECONDS)
    hour_retention_seconds: int = Field(default=90 * DAY_SECONDS, ge=DAY_SECONDS, le=400 * DAY_SECONDS)
    day_retention_seconds: int = Field(
        default=3 * 365 * DAY_SECONDS, ge=7 * DAY_SECONDS, le=10 * 365 * DAY_SECONDS
    )
