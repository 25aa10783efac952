"""What a settings change changed: the differing leaves of two settings, each with its path, old and new."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.admin.settings_document import RunSettings


@dataclass(frozen=True)
class SettingChange:
    path: str
    """As in the stored document: `queue_policies.analytics.timeout_ms`, `bigquery.allowed_datasets`."""
    old: Any
    """JSON data (a list is one value: the whole list changed)."""
    new: Any


def diff(old: RunSettings, new: RunSettings) -> list[SettingChange]:
    """Every leaf that differs, in path order."""
    changes: list[SettingChange] = []
    _walk("", old.model_dump(mode="json"), new.model_dump(mode="json"), changes)
    return sorted(changes, key=lambda change: change.path)


def _walk(prefix: str, old: Any, new: Any, changes: list[SettingChange]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(old.keys() | new.keys()):
            _walk(f"{prefix}{key}.", old.get(key), new.get(key), changes)
    elif old != new:
        changes.append(SettingChange(prefix.rstrip("."), old, new))
