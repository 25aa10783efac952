"""The audit detail of an allowed admin call: what it asked, in short, and the counts it answered.

The request is written in the one-line shape of protobuf's text format (`action: BULK_ACTION_RETRY filter
{ payload_text: "invoice" }`), but by a walk that stops once the detail is long enough: a request can hold
a thousand ids or a whole settings document, and rendering all of it to keep 300 characters would cost a
call its whole budget. Of the answer only its singular counts and flags are kept (`affected: 3`): an
answer can hold a secret (a new key's), a request never.
"""

from __future__ import annotations

import json
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

REQUEST_CHARS = 300
_COUNT_TYPES = frozenset(
    {
        FieldDescriptor.TYPE_INT32,
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_UINT32,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_BOOL,
    }
)


class _Brief:
    """Text pieces up to a budget; `full` once it is spent, so every walk can stop."""

    def __init__(self, budget: int) -> None:
        self.parts: list[str] = []
        self.left = budget

    @property
    def full(self) -> bool:
        return self.left <= 0

    def add(self, text: str) -> None:
        if not self.full:
            self.parts.append(text)
            self.left -= len(text)


def _scalar(field: FieldDescriptor, value: Any, room: int) -> str:
    if field.type == FieldDescriptor.TYPE_STRING:
        return json.dumps(value[: max(room, 0) + 1], ensure_ascii=False)
    if field.type == FieldDescriptor.TYPE_BYTES:
        return f"<{len(value)} bytes>"
    if field.type == FieldDescriptor.TYPE_BOOL:
        return "true" if value else "false"
    if field.type == FieldDescriptor.TYPE_ENUM and field.enum_type is not None:
        known = field.enum_type.values_by_number.get(value)
        return known.name if known is not None else str(value)
    return str(value)


def _value(out: _Brief, field: FieldDescriptor, value: Any) -> None:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        out.add(f"{field.name} {{")
        _message(out, value)
        out.add(" }")
    else:
        out.add(f"{field.name}: {_scalar(field, value, out.left)}")


def _message(out: _Brief, message: Message) -> None:
    for field, value in message.ListFields():
        if out.full:
            return
        entry = field.message_type
        if entry is not None and entry.GetOptions().map_entry:
            key_field, value_field = entry.fields_by_name["key"], entry.fields_by_name["value"]
            for key in value:
                if out.full:
                    return
                out.add(f" {field.name} {{ key: {_scalar(key_field, key, out.left)} ")
                _value(out, value_field, value[key])
                out.add(" }")
        elif field.is_repeated:
            for item in value:
                if out.full:
                    return
                out.add(" ")
                _value(out, field, item)
        else:
            out.add(" ")
            _value(out, field, value)


def brief(message: Message, limit: int = REQUEST_CHARS) -> str:
    """`message` in one line of text format, cut at `limit` characters (then ending in `…`)."""
    out = _Brief(limit + 1)
    _message(out, message)
    text = "".join(out.parts).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def counts(result: Message) -> str:
    """The answer's singular integer and boolean fields: `affected: 3 more_remain: true`."""
    return " ".join(
        f"{field.name}: {str(value).lower()}"
        for field, value in result.ListFields()
        if field.type in _COUNT_TYPES and not field.is_repeated
    )


def summary(request: Any, result: Any) -> str:
    """What an allowed admin call asked and what it did: `asked …; answered …`."""
    asked = brief(request) if isinstance(request, Message) else ""
    answered = counts(result) if isinstance(result, Message) else ""
    parts = [f"asked {asked}" if asked else "", f"answered {answered}" if answered else ""]
    return "; ".join(part for part in parts if part)
