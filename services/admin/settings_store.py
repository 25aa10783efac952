"""The settings document in Redis, written only with a version check, with its history and a change notice.

Keys (docs/key-layout.md): the document `<JOBS_KEY_PREFIX>:settings` (a JSON string, read by every jobs
process), its history `{<JOBS_KEY_PREFIX>:settings}:history` (a stream capped at `history_max_entries`;
the hash tag puts it in the document's cluster slot, so one script writes both) and the channel
`<JOBS_KEY_PREFIX>:settings:changed`, where each write publishes the new version.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.admin.settings_diff import SettingChange
from services.runtime.errors import InvalidArgumentError, UnavailableError

DEFAULT_HISTORY_MAX_ENTRIES = 1_000
MAX_PAGE_SIZE = 500

# Sets the document only if it is still at the version the new one was built on; then records the
# change and announces it. → {1, new version} or {0, the version found (-1: not a JSON document)}.
_WRITE = """
local current = redis.call('GET', KEYS[1])
local version = 0
if current then
  local ok, document = pcall(cjson.decode, current)
  if not ok or type(document) ~= 'table' then
    return {0, -1}
  end
  version = tonumber(document['version']) or 0
end
if version ~= tonumber(ARGV[1]) then
  return {0, version}
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[4], '*', 'revision', ARGV[3])
redis.call('PUBLISH', ARGV[5], ARGV[6])
return {1, tonumber(ARGV[6])}
"""


@dataclass(frozen=True)
class Revision:
    """One change of the settings."""

    version: int
    time_ms: int
    principal: str
    changes: tuple[SettingChange, ...]


@dataclass(frozen=True)
class WriteOutcome:
    written: bool
    version: int
    """The new version if written, else the version found (-1: the stored document is not JSON)."""


class SettingsStore:
    def __init__(
        self, redis: Redis, *, prefix: str, history_max_entries: int = DEFAULT_HISTORY_MAX_ENTRIES
    ) -> None:
        self._redis = redis
        self.key = f"{prefix}:settings"
        self.history_key = f"{{{self.key}}}:history"
        self.channel = f"{self.key}:changed"
        self._history_max_entries = history_max_entries
        self._write = redis.register_script(_WRITE)

    async def read(self) -> bytes | None:
        with _redis_answers():
            return cast(bytes | None, await self._redis.get(self.key))

    async def write(self, *, base_version: int, document: str, revision: Revision) -> WriteOutcome:
        """Stores `document` (at `revision.version`) if the stored one is still at `base_version`."""
        entry = json.dumps(
            {
                "version": revision.version,
                "time_ms": revision.time_ms,
                "principal": revision.principal,
                "changes": [{"path": c.path, "old": c.old, "new": c.new} for c in revision.changes],
            },
            separators=(",", ":"),
        )
        with _redis_answers():
            written, version = await self._write(
                keys=[self.key, self.history_key],
                args=[
                    base_version,
                    document,
                    entry,
                    self._history_max_entries,
                    self.channel,
                    revision.version,
                ],
            )
        if not written and int(version) == revision.version and await self.read() == document.encode():
            # Our own write, re-sent after its reply was lost: it did happen.
            return WriteOutcome(True, revision.version)
        return WriteOutcome(bool(written), int(version))

    async def history(self, *, page_size: int = 50, page_token: str = "") -> tuple[list[Revision], str]:
        """Newest first; → (revisions, the next page's token or "")."""
        if not 0 < page_size <= MAX_PAGE_SIZE:
            raise InvalidArgumentError.for_field("page_size", f"use 1 to {MAX_PAGE_SIZE}")
        if page_token and not _STREAM_ID.match(page_token):
            raise InvalidArgumentError.for_field("page_token", "not a token this API returned; start again")
        top = f"({page_token}" if page_token else "+"
        with _redis_answers():
            rows = cast(
                list[tuple[bytes, dict[bytes, bytes]]],
                await self._redis.xrevrange(self.history_key, max=top, min="-", count=page_size + 1),
            )
        revisions = [_revision(fields.get(b"revision", b"{}")) for _, fields in rows[:page_size]]
        more = len(rows) > page_size
        return revisions, rows[page_size - 1][0].decode() if more else ""


@contextlib.contextmanager
def _redis_answers() -> Iterator[None]:
    """A Redis error or timeout → UNAVAILABLE (nothing was changed unless the write's reply was lost)."""
    try:
        yield
    except (RedisError, TimeoutError) as error:
        raise UnavailableError(
            f"the settings' Redis did not answer ({type(error).__name__}); read the settings again "
            "(a write may have happened) and retry shortly",
            reason="SETTINGS_STORE_UNAVAILABLE",
        ) from None


_STREAM_ID = re.compile(r"^\d{1,20}-\d{1,20}$")


def _revision(raw: bytes) -> Revision:
    data: dict[str, Any] = json.loads(raw)
    return Revision(
        version=int(data.get("version", 0)),
        time_ms=int(data.get("time_ms", 0)),
        principal=str(data.get("principal", "")),
        changes=tuple(
            SettingChange(str(c.get("path", "")), c.get("old"), c.get("new")) for c in data.get("changes", [])
        ),
    )
