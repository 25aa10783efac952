"""Which RPC a gateway request is: REST method + path by the protos' `google.api.http` rules, or a native
gRPC path, read from the same descriptor set Envoy's transcoder reads, so the two cannot disagree.

Literal paths win over templates (as in the transcoder: `/api/job/result` before `/api/job/{id}`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2

_VERBS = ("get", "put", "post", "delete", "patch")
# `{name}` or `{name=pattern}` in a path template; the pattern's `*` is one segment, `**` any.
_VARIABLE = re.compile(r"\{([a-z_][a-z0-9_.]*)(?:=([^}]*))?\}")


@dataclass(frozen=True)
class Match:
    method: str
    """The RPC's full method name, `/switchboard.jobs.v1.JobsService/PauseQueue`."""
    target: str = ""
    """The first path variable's value (the queue, rule or key a call acts on), if the path has one."""


class RouteMap:
    def __init__(self, rules: Iterable[tuple[str, str, str]]) -> None:
        """`rules`: (HTTP verb, path template, full method name)."""
        self._literal: dict[tuple[str, str], str] = {}
        self._templates: list[tuple[str, re.Pattern[str], str]] = []
        self.methods: set[str] = set()
        for verb, template, method in rules:
            self.methods.add(method)
            if "{" in template:
                self._templates.append((verb, _compile(template), method))
            else:
                self._literal[(verb, template)] = method

    @classmethod
    def from_descriptor_set(cls, data: bytes, extra: Iterable[tuple[str, str, str]] = ()) -> RouteMap:
        """The REST and gRPC routes of every service in the set, plus `extra` rules (paths served by
        something other than an RPC, such as the dashboard, named by a method of their own)."""
        files = descriptor_pb2.FileDescriptorSet.FromString(data)
        rules: list[tuple[str, str, str]] = []
        for file in files.file:
            for service in file.service:
                for method in service.method:
                    full_name = f"/{file.package}.{service.name}/{method.name}"
                    rules.append(("", "", full_name))  # known to native gRPC even without a REST rule
                    if method.options.HasExtension(annotations_pb2.http):
                        rules.extend(_bindings(method.options.Extensions[annotations_pb2.http], full_name))
        return cls([*(rule for rule in rules if rule[1] or rule[2]), *extra])

    def match(self, verb: str, path: str) -> Match | None:
        """The RPC `verb path` reaches (path as sent, query string and all), or None for no RPC."""
        path = path.split("?", 1)[0]
        verb = verb.upper()
        if path in self.methods:  # native gRPC: the path is the method
            return Match(path)
        literal = self._literal.get((verb, path))
        if literal is not None:
            return Match(literal)
        for rule_verb, pattern, method in self._templates:
            if rule_verb == verb and (found := pattern.fullmatch(path)):
                return Match(method, next(iter(found.groups()), "") or "")
        return None


def _bindings(rule: http_pb2.HttpRule, method: str) -> list[tuple[str, str, str]]:
    found = []
    for one in (rule, *rule.additional_bindings):
        for verb in _VERBS:
            template = getattr(one, verb)
            if template:
                found.append((verb.upper(), template, method))
        if one.HasField("custom"):
            found.append((one.custom.kind.upper(), one.custom.path, method))
    return found


def _compile(template: str) -> re.Pattern[str]:
    pattern, position = "", 0
    for variable in _VARIABLE.finditer(template):
        pattern += re.escape(template[position : variable.start()])
        segments = variable.group(2) or "*"
        pattern += "(" + "/".join(".+" if s == "**" else "[^/]+" if s == "*" else re.escape(s)
                                  for s in segments.split("/")) + ")"  # fmt: skip
        position = variable.end()
    return re.compile(pattern + re.escape(template[position:]))
