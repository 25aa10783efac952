"""Where BigQuery queries run, as settings: real BigQuery or the local emulator."""

from __future__ import annotations

import enum

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

GIB = 1024**3
# The project id the emulator answers for when no GOOGLE_CLOUD_PROJECT is given.
EMULATOR_DEFAULT_PROJECT = "switchboard-dev"


class BackendKind(enum.Enum):
    BIGQUERY = "bigquery"
    EMULATOR = "emulator"
    NOT_CONFIGURED = "not_configured"


class BigQueryBackendSettings(BaseSettings):
    """Where queries run: real BigQuery (a project, Application Default Credentials) or the emulator.

    The emulator is used when `BIGQUERY_EMULATOR_HOST` is set, real BigQuery when only
    `GOOGLE_CLOUD_PROJECT` is; with neither the backend is not configured. Both go through the same
    client code; only the endpoint and the credentials differ.
    """

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    google_cloud_project: str | None = Field(
        default=None,
        pattern=r"^[a-z][a-z0-9\-]{4,28}[a-z0-9]$",
        description="The project queries run (and are billed) in.",
    )
    bigquery_emulator_host: str | None = Field(
        default=None,
        max_length=256,
        pattern=r"^https?://[A-Za-z0-9.\-\[\]:]+:[0-9]{1,5}$",
        description="The emulator's REST endpoint, http://host:port; unset for real BigQuery.",
    )
    bigquery_default_dataset: str | None = Field(
        default=None,
        max_length=1024,
        pattern=r"^[A-Za-z0-9_]{1,1024}$",
        description="Unqualified table names resolve here.",
    )
    bigquery_location: str | None = Field(
        default=None, max_length=64, pattern=r"^[A-Za-z0-9\-]+$", description="e.g. US, EU, europe-west1."
    )
    bigquery_default_max_bytes_billed: int = Field(
        default=10 * GIB, ge=1, description="The bytes cap of a query that asks for none."
    )
    bigquery_max_bytes_billed: int = Field(
        default=100 * GIB, ge=1, description="The highest bytes cap a query may ask for."
    )
    bigquery_threads: int = Field(
        default=8, ge=1, le=64, description="Threads for the blocking BigQuery client, per process."
    )
    bigquery_api_timeout_seconds: float = Field(
        default=5.0, gt=0, le=60, description="One HTTP request to the BigQuery API at most."
    )
    bigquery_api_deadline_seconds: float = Field(
        default=10.0, gt=0, le=120, description="One API call at most, its retries included."
    )

    @model_validator(mode="after")
    def _caps_in_order(self) -> BigQueryBackendSettings:
        if self.bigquery_default_max_bytes_billed > self.bigquery_max_bytes_billed:
            raise ValueError("BIGQUERY_DEFAULT_MAX_BYTES_BILLED must not exceed BIGQUERY_MAX_BYTES_BILLED")
        if self.bigquery_api_timeout_seconds > self.bigquery_api_deadline_seconds:
            raise ValueError("BIGQUERY_API_TIMEOUT_SECONDS must not exceed BIGQUERY_API_DEADLINE_SECONDS")
        return self

    @property
    def kind(self) -> BackendKind:
        if self.bigquery_emulator_host:
            return BackendKind.EMULATOR
        if self.google_cloud_project:
            return BackendKind.BIGQUERY
        return BackendKind.NOT_CONFIGURED

    @property
    def project(self) -> str:
        return self.google_cloud_project or EMULATOR_DEFAULT_PROJECT
