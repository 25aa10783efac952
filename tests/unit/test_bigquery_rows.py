"""BigQuery's values as the API's JSON, page tokens, labels, bytes caps and the error mapping."""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

import pytest
import requests
from google.api_core import exceptions as google_errors
from google.cloud.bigquery import SchemaField
from google.protobuf import json_format, struct_pb2

from services.admin.probes import bigquery_probe
from services.bigquery import page_token, payload_seal
from services.bigquery.job_errors import (
    BigQueryAccessDenied,
    BigQueryInvalidQuery,
    BigQueryNotFound,
    BigQueryUnavailable,
    to_job_error,
)
from services.bigquery.row_json import row_to_json
from services.runtime.errors import InvalidArgumentError
from services.warehouse.backend import BigQueryBackend, job_labels, label_value
from services.warehouse.settings import BigQueryBackendSettings


def test_rows_are_typed_as_proto3_json_writes_them() -> None:
    schema = [
        SchemaField("n", "INTEGER"),
        SchemaField("price", "NUMERIC"),
        SchemaField("ratio", "FLOAT"),
        SchemaField("bad", "FLOAT"),
        SchemaField("at", "TIMESTAMP"),
        SchemaField("day", "DATE"),
        SchemaField("blob", "BYTES"),
        SchemaField("gone", "STRING"),
        SchemaField("tags", "STRING", mode="REPEATED"),
        SchemaField("who", "RECORD", fields=[SchemaField("id", "INT64"), SchemaField("ok", "BOOL")]),
        SchemaField("many", "RECORD", mode="REPEATED", fields=[SchemaField("x", "INT64")]),
    ]
    row = {
        "n": 2**62,
        "price": decimal.Decimal("12.50"),
        "ratio": 0.25,
        "bad": float("nan"),
        "at": dt.datetime(2026, 11, 1, 8, 30, 5, 120000, tzinfo=dt.UTC),
        "day": dt.date(2026, 11, 1),
        "blob": b"\x00\x01",
        "gone": None,
        "tags": ["a", "b"],
        "who": {"id": 7, "ok": True},
        "many": [{"x": 1}, {"x": 2}],
    }
    assert row_to_json(row, schema) == {
        "n": str(2**62),
        "price": "12.50",
        "ratio": 0.25,
        "bad": "NaN",
        "at": "2026-11-01T08:30:05.120000Z",
        "day": "2026-11-01",
        "blob": "AAE=",
        "gone": None,
        "tags": ["a", "b"],
        "who": {"id": "7", "ok": True},
        "many": [{"x": "1"}, {"x": "2"}],
    }


def test_a_page_token_round_trips_and_a_forged_one_is_400() -> None:
    assert page_token.decode(page_token.encode("1000")) == "1000"
    assert page_token.encode(None) == ""
    assert page_token.decode("") is None
    for forged in ("1000", "bq1.***", "bq1." + "A" * 5000):
        with pytest.raises(InvalidArgumentError):
            page_token.decode(forged)


def test_labels_follow_bigquerys_rules() -> None:
    assert label_value("Key:Billing Team/EU") == "key_billing_team_eu"
    assert len(label_value("x" * 100)) == 63
    labels = job_labels(principal="admin:Alice", job_id="query-ABC", extra={"team": "growth"})
    assert labels == {
        "team": "growth",
        "switchboard_principal": "admin_alice",
        "switchboard_job": "query-abc",
    }


def _api_error(kind: type[google_errors.GoogleAPICallError], reason: str) -> google_errors.GoogleAPICallError:
    return kind("boom", errors=[{"reason": reason, "message": f"{reason} at [1:8]", "location": "query"}])


def test_bigquerys_errors_map_to_permanent_or_retryable_job_errors() -> None:
    invalid = to_job_error(_api_error(google_errors.BadRequest, "invalidQuery"), bigquery_job_id="j1")
    assert isinstance(invalid, BigQueryInvalidQuery) and not invalid.retryable
    assert "invalidQuery at [1:8]" in invalid.message and "location query" in invalid.message
    assert invalid.metadata == {"reason": "invalidQuery", "location": "query"}
    assert isinstance(to_job_error(_api_error(google_errors.NotFound, "notFound")), BigQueryNotFound)
    assert isinstance(to_job_error(_api_error(google_errors.Forbidden, "accessDenied")), BigQueryAccessDenied)
    for transient in (
        _api_error(google_errors.Forbidden, "rateLimitExceeded"),
        _api_error(google_errors.InternalServerError, "backendError"),
        google_errors.ServiceUnavailable("down"),  # type: ignore[no-untyped-call]
        google_errors.RetryError("deadline", cause=ConnectionError("refused")),  # type: ignore[no-untyped-call]
        requests.exceptions.ConnectionError("refused"),
    ):
        mapped = to_job_error(transient)
        assert isinstance(mapped, BigQueryUnavailable) and mapped.retryable, transient


def test_the_connection_test_reports_bigquery_not_configured_only_without_both() -> None:
    neither = BigQueryBackendSettings(google_cloud_project=None, bigquery_emulator_host=None)
    assert bigquery_probe(BigQueryBackend(neither)) is None
    emulator = BigQueryBackendSettings(bigquery_emulator_host="http://127.0.0.1:9050")
    assert bigquery_probe(BigQueryBackend(emulator)) is not None
    real = BigQueryBackendSettings(google_cloud_project="my-project-1")
    assert bigquery_probe(BigQueryBackend(real)) is not None


def test_a_sealed_payload_verifies_after_the_struct_round_trip_and_a_changed_one_does_not() -> None:
    payload = {
        "sql": "SELECT 1",
        "parameters": [{"name": "n", "type": "INT64", "value": 7}],
        "max_bytes_billed": 5,
    }
    sealed = payload_seal.sealed(payload, "k" * 32, "query-1")
    through_struct = json_format.MessageToDict(_struct(sealed))
    assert through_struct["max_bytes_billed"] == 5.0
    assert payload_seal.verifies(through_struct, "k" * 32, "query-1")
    assert not payload_seal.verifies({**through_struct, "sql": "DROP TABLE t"}, "k" * 32, "query-1")
    assert not payload_seal.verifies(through_struct, "other-key" * 4, "query-1")
    assert not payload_seal.verifies(payload, "k" * 32, "query-1"), "no seal"


def test_a_seal_copied_to_another_job_does_not_verify() -> None:
    """A sealed payload is readable with jobs:read; submitted again as a new job (an admin's DML, say),
    its seal is not that job's."""
    sealed = payload_seal.sealed({"sql": "DELETE FROM ds.t WHERE true"}, "k" * 32, "query-admins")
    assert payload_seal.verifies(sealed, "k" * 32, "query-admins")
    assert not payload_seal.verifies(sealed, "k" * 32, "query-copied")


def _struct(value: dict[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(value)
    return message
