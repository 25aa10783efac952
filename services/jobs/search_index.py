"""The words a job is found by: how payloads, errors and search text become index words.

A job is filed (in Redis, by the scripts that write it; see docs/key-layout.md) under each word of its
payload's keys and scalar values and of its last error's type and message. A word is a run of letters,
digits or `_`, lower-cased, cut to `MAX_WORD_CHARS`; one-character words are left out (too common to
narrow anything), and a job is filed under at most `max_words` distinct words, the first ones found.
The search text is split the same way, so a query word matches exactly the words the job was filed under.
Errors written by the scripts themselves (a dead-lettered job's) are split by the Lua twin in prelude.lua,
which agrees with this on ASCII text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

MAX_WORD_CHARS = 32
MIN_WORD_CHARS = 2
DEFAULT_MAX_WORDS_PER_JOB = 64
MAX_QUERY_WORDS = 8

_WORD = re.compile(r"\w+")


def words_of(text: str, *, limit: int) -> list[str]:
    """The distinct index words of `text`, in order of first appearance, at most `limit`."""
    found: dict[str, None] = {}
    for match in _WORD.finditer(text.lower()):
        word = match.group()[:MAX_WORD_CHARS]
        if len(word) >= MIN_WORD_CHARS:
            found.setdefault(word)
            if len(found) >= limit:
                break
    return list(found)


def payload_words(payload: Any, *, limit: int = DEFAULT_MAX_WORDS_PER_JOB) -> list[str]:
    """The index words of a payload: its keys and scalar values, depth first."""
    found: dict[str, None] = {}
    for text in _texts(payload):
        for word in words_of(text, limit=limit):
            found.setdefault(word)
            if len(found) >= limit:
                return list(found)
    return list(found)


def error_words(error_type: str, message: str, *, limit: int = DEFAULT_MAX_WORDS_PER_JOB) -> list[str]:
    return words_of(f"{error_type} {message}", limit=limit)


def _texts(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _texts(item)
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item)
    elif isinstance(value, bool) or value is None:
        return
    else:
        yield str(value)
