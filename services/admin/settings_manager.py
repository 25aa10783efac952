"""Reading and changing the run-time settings: the version check, the diff kept as history, and the queues'
paused flags, which stay the queues' own (changed through the jobs service, never in the document)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from services.admin.settings_diff import SettingChange, diff
from services.admin.settings_document import RunSettings, apply_changes, parse_document, render_document
from services.admin.settings_store import Revision, SettingsStore
from services.runtime.errors import ConflictError, UnavailableError

logger = logging.getLogger(__name__)

# Unchecked updates (no expected_version) that lose the race to another writer try again this often.
_UNCHECKED_ATTEMPTS = 3


class QueueControl(Protocol):
    """The queues' paused flags, as the jobs service keeps them."""

    async def paused_flags(self) -> dict[str, bool]: ...

    async def set_paused(self, queue: str, paused: bool) -> None: ...


@dataclass(frozen=True)
class SettingsSnapshot:
    version: int
    update_time_ms: int
    settings: RunSettings


class SettingsManager:
    def __init__(
        self,
        store: SettingsStore,
        queues: QueueControl,
        *,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self._store = store
        self._queues = queues
        self._clock_ms = clock_ms

    async def get(self) -> SettingsSnapshot:
        stored = parse_document(await self._store.read())
        paused = await self._queues.paused_flags()
        settings = stored.settings.model_copy(
            update={"queue_paused": {**stored.settings.queue_paused, **paused}}
        )
        return SettingsSnapshot(stored.version, stored.update_time_ms, settings)

    async def update(
        self,
        changes: Mapping[str, Any],
        *,
        expected_version: int | None,
        principal: str,
        shown_as: Callable[[str], str] = str,
    ) -> SettingsSnapshot:
        """Applies `changes` (path → JSON value) if the settings are still at `expected_version` (None: any).

        Stale → ConflictError with the current version; an invalid value → InvalidArgumentError naming
        each field (as `shown_as` names it). A change that changes nothing writes nothing (no new version).
        """
        for _ in range(_UNCHECKED_ATTEMPTS):
            current = await self.get()
            if expected_version is not None and expected_version != current.version:
                raise _stale(expected_version, current.version)
            updated = apply_changes(current.settings, changes, shown_as=shown_as)
            changed = diff(current.settings, updated)
            if not changed:
                return current
            version, now_ms = current.version + 1, self._clock_ms()
            outcome = await self._store.write(
                base_version=current.version,
                document=render_document(updated, version=version, update_time_ms=now_ms),
                revision=Revision(version, now_ms, principal, tuple(changed)),
            )
            if outcome.written:
                logger.info(
                    "settings changed",
                    extra={
                        "settings_version": version,
                        "principal": principal,
                        "paths": [c.path for c in changed],
                    },
                )
                await self._apply_paused(changed, version)
                return SettingsSnapshot(version, now_ms, updated)
            if expected_version is not None:
                raise _stale(expected_version, outcome.version)
        raise ConflictError(
            "the settings kept changing while this update was applied; send it again",
            reason="SETTINGS_BUSY",
        )

    async def history(self, *, page_size: int, page_token: str) -> tuple[list[Revision], str]:
        return await self._store.history(page_size=page_size, page_token=page_token)

    async def _apply_paused(self, changed: list[SettingChange], version: int) -> None:
        for change in changed:
            if not change.path.startswith("queue_paused."):
                continue
            queue = change.path.removeprefix("queue_paused.")
            try:
                await self._queues.set_paused(queue, bool(change.new))
            except UnavailableError as error:
                raise UnavailableError(
                    f"settings version {version} is saved, but the jobs service did not take queue "
                    f"{queue!r}'s paused flag ({error.message}); send the same change again (based on "
                    f"version {version}) once it is back, or pause/resume the queue itself",
                    metadata={"current_version": str(version)},
                ) from None


def _stale(expected: int, current: int) -> ConflictError:
    return ConflictError(
        f"the settings are at version {current}, not {expected}: read them again (GET /api/settings), "
        f"reapply your change and send it with expected_version {current}",
        reason="STALE_SETTINGS_VERSION",
        metadata={"current_version": str(current), "expected_version": str(expected)},
    )
