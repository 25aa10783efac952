"""The BigQuery emulator for tests: one per test session, on free ports, its HOME and data in a temp dir.

Conftests import the fixtures (`from tests.bigquery_emulator import bigquery_emulator`); a test asks for
`bigquery_emulator` (the process: `.endpoint`, `.env`, `.project`) or `bigquery_backend` (a
`BigQueryBackend` pointed at it). `sample_events` seeds `switchboard_sample.events` once per session.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from devstack.bigquery_emulator import BigQueryEmulator
from services.warehouse import sample_dataset
from services.warehouse.backend import BigQueryBackend
from services.warehouse.settings import BigQueryBackendSettings


def backend_settings(emulator: BigQueryEmulator, **overrides: object) -> BigQueryBackendSettings:
    """Backend settings for `emulator` (overrides by field name, e.g. bigquery_api_deadline_seconds)."""
    return BigQueryBackendSettings(
        google_cloud_project=emulator.project,
        bigquery_emulator_host=emulator.endpoint,
        **overrides,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="session")
def bigquery_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BigQueryEmulator]:
    emulator = BigQueryEmulator(tmp_path_factory.mktemp("bigquery-emulator"))
    emulator.start()
    yield emulator
    emulator.stop()


@pytest.fixture
async def bigquery_backend(bigquery_emulator: BigQueryEmulator) -> AsyncIterator[BigQueryBackend]:
    backend = BigQueryBackend(backend_settings(bigquery_emulator))
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def sample_events(bigquery_emulator: BigQueryEmulator) -> str:
    """Seeds the sample table once; its name, `switchboard_sample.events`."""

    async def seed() -> None:
        backend = BigQueryBackend(backend_settings(bigquery_emulator))
        try:
            await sample_dataset.seed(backend)
        finally:
            backend.close()

    asyncio.run(seed())
    return f"{sample_dataset.DATASET}.{sample_dataset.TABLE}"
