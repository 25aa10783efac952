"""The admin service's own settings as the dashboard shows them: read-only mode, the document, history.

The dashboard runs in the admin process, so it reads the settings through the same manager the
SettingsService serves (a Redis failure: 503, as there).
"""

from __future__ import annotations

import json
from typing import Any

from redis.exceptions import RedisError

from services.admin.dashboard.backend import BackendError
from services.admin.settings_document import parse_document
from services.admin.settings_manager import SettingsManager
from services.admin.settings_store import Revision, SettingsStore
from services.runtime.errors import SwitchboardError


class ManagedSettings:
    def __init__(self, store: SettingsStore, manager: SettingsManager) -> None:
        self._store = store
        self._manager = manager

    async def read_only(self) -> bool:
        try:
            return parse_document(await self._store.read()).settings.dashboard_read_only
        except (RedisError, SwitchboardError) as error:
            raise BackendError(503, f"the settings cannot be read now ({error}); try again") from None

    async def current(self) -> dict[str, Any]:
        try:
            snapshot = await self._manager.get()
        except (RedisError, SwitchboardError) as error:
            raise BackendError(503, f"the settings cannot be read now ({error}); try again") from None
        document = json.dumps(snapshot.settings.model_dump(mode="json"), indent=2, sort_keys=True)
        return {"version": snapshot.version, "document": document}

    async def history(self, *, page_size: int, page_token: str) -> tuple[list[Revision], str]:
        try:
            return await self._manager.history(page_size=page_size, page_token=page_token)
        except (RedisError, SwitchboardError) as error:
            raise BackendError(503, f"the settings history cannot be read now ({error})") from None
