"""The SQL guard's verdicts on recent read queries, remembered, so that a RunQuery cache hit does not pay
for parsing its SQL again (sqlglot takes milliseconds per statement, more than the rest of a hit).

A verdict depends only on the SQL and the guard's inputs (default dataset, allow-list, project), which are
all part of the memo's key: a change of the allow-list is a new key, never a stale verdict. Only accepted
statements are kept (a refusal raises, and is worked out afresh each time), at most `MAX_ENTRIES` of them,
each of at most `MAX_SQL_CHARS` characters (so at most a few MB).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from services.bigquery import sql_guard

MAX_ENTRIES = 1024
MAX_SQL_CHARS = 4096


def inspect_read(
    sql: str, *, default_dataset: str | None, allowed_datasets: Sequence[str], project: str | None
) -> sql_guard.Inspection:
    """`sql_guard.inspect` of a read query (no writes), remembered for short SQL."""
    if len(sql) > MAX_SQL_CHARS:
        return _inspect(sql, default_dataset, tuple(allowed_datasets), project)
    return _remembered(sql, default_dataset, tuple(allowed_datasets), project)


def _inspect(
    sql: str, default_dataset: str | None, allowed_datasets: tuple[str, ...], project: str | None
) -> sql_guard.Inspection:
    return sql_guard.inspect(
        sql,
        default_dataset=default_dataset,
        allowed_datasets=allowed_datasets,
        allow_writes=False,
        project=project,
    )


_remembered = functools.lru_cache(maxsize=MAX_ENTRIES)(_inspect)
