"""The analytics retention as the admin service writes it and as analytics reads it back."""

from __future__ import annotations

import pytest

from services.admin.settings_document import RunSettings, apply_changes, render_document
from services.analytics.retention_source import parse_retention
from services.analytics_retention import AnalyticsRetention
from services.runtime.errors import InvalidArgumentError


def test_the_defaults_are_48_hours_90_days_3_years() -> None:
    assert parse_retention(None) == AnalyticsRetention(
        minute_retention_seconds=48 * 3600,
        hour_retention_seconds=90 * 86_400,
        day_retention_seconds=3 * 365 * 86_400,
    )
    assert parse_retention('{"version": 3, "queue_policies": {}}') == AnalyticsRetention()


def test_a_change_through_the_settings_document_reaches_analytics() -> None:
    changed = apply_changes(RunSettings(), {"analytics.minute_retention_seconds": 6 * 3600})
    document = render_document(changed, version=2, update_time_ms=1)
    assert parse_retention(document).minute_retention_seconds == 6 * 3600
    assert parse_retention(document).hour_retention_seconds == 90 * 86_400


def test_a_retention_out_of_bounds_is_refused_with_its_bounds() -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        apply_changes(RunSettings(), {"analytics.minute_retention_seconds": 60})
    [violation] = caught.value.violations
    assert violation.field == "analytics.minute_retention_seconds"
    assert "must be from 3600 s to 2592000 s" in violation.description


def test_a_bad_section_is_reported_not_applied() -> None:
    with pytest.raises(ValueError, match="minute_retention_seconds"):
        parse_retention('{"analytics": {"minute_retention_seconds": "soon"}}')
