"""Envoy's rate-limit requests in our terms: which rule, whose allowance, and the answer Envoy expects.

The gateway sends one descriptor per request with the entries `generic_key` (the rule, e.g. `api`),
`remote_address` and, when the client sent one, `api_key`. The client is its API key if present, else
its address.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from services.ratelimit.limiter import Decision, Limiter
from services.ratelimit.rules import Rule, RuleBook


@dataclass(frozen=True)
class DescriptorVerdict:
    rule: Rule | None
    decision: Decision | None
    """None when the descriptor names no known rule: nothing limits it."""


class GatewayLimits:
    def __init__(self, rules: RuleBook, limiter: Limiter, *, domain: str) -> None:
        self._rules = rules
        self._limiter = limiter
        self.domain = domain

    async def check(
        self, domain: str, descriptors: Sequence[Mapping[str, str]], hits: int
    ) -> list[DescriptorVerdict]:
        verdicts = []
        for entries in descriptors:
            rule = self._rules.find(entries.get("generic_key", "")) if domain == self.domain else None
            client = entries.get("api_key") or entries.get("remote_address") or "anonymous"
            if rule is None:
                verdicts.append(DescriptorVerdict(None, None))
                continue
            verdicts.append(
                DescriptorVerdict(rule, await self._limiter.decide(rule, f"client:{client}", hits or 1))
            )
        return verdicts
