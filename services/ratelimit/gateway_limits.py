"""Envoy's rate-limit requests in our terms: which rule, whose allowance, and the answer Envoy expects.

A rate-limit check through the gateway is the exception: its route makes no call here, and the check
itself charges its caller's per-address ceiling (`check_for_client`), so a check costs Envoy one call
to this service instead of two.

The gateway sends, per request, a descriptor for each rule that applies to the route: `generic_key`
(the rule: `api` per client, `api-address` the per-address ceiling), `remote_address` and, when the
client sent one, `api_key`. The client is its API key if present, else its address.

Nothing a client sends can make a lookup fail (Envoy would then let the request through): the gateway
already refuses over-long API keys, and here, as a second line, any identity that is long or not plain
printable ASCII is replaced by its SHA-256, so it always fits the limiter's key.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from services.ratelimit.limiter import MAX_COST, Decision, Limiter
from services.ratelimit.rules import Rule, RuleBook
from services.runtime.errors import ResourceExhaustedError

ADDRESS_CEILING_RULE = "api-address"
"""The per-address ceiling's rule: the gateway charges it on every route (the envoy.yaml descriptors)."""

MAX_PLAIN_IDENTITY_LENGTH = 128
"""An identity longer than this (or with characters outside printable ASCII) is keyed by its hash."""


@dataclass(frozen=True)
class DescriptorVerdict:
    rule: Rule | None
    decision: Decision | None
    """None when the descriptor names no known rule: nothing limits it."""


def client_key(entries: Mapping[str, str]) -> str:
    """The allowance a descriptor draws on: `client:<identity>`, bounded whatever the identity is."""
    identity = entries.get("api_key") or entries.get("remote_address") or "anonymous"
    if len(identity) > MAX_PLAIN_IDENTITY_LENGTH or not (identity.isascii() and identity.isprintable()):
        identity = "sha256:" + hashlib.sha256(identity.encode("utf-8", "surrogatepass")).hexdigest()
    return f"client:{identity}"


class GatewayLimits:
    def __init__(self, rules: RuleBook, limiter: Limiter, *, domain: str) -> None:
        self._rules = rules
        self._limiter = limiter
        self.domain = domain

    async def check(
        self, domain: str, descriptors: Sequence[Mapping[str, str]], hits: int
    ) -> list[DescriptorVerdict]:
        """One verdict per descriptor, in order; the descriptors are checked concurrently."""
        cost = min(max(hits, 1), MAX_COST)

        async def verdict(entries: Mapping[str, str]) -> DescriptorVerdict:
            rule = self._rules.find(entries.get("generic_key", "")) if domain == self.domain else None
            if rule is None:
                return DescriptorVerdict(None, None)
            return DescriptorVerdict(rule, await self._limiter.decide(rule, client_key(entries), cost))

        return list(await asyncio.gather(*(verdict(entries) for entries in descriptors)))

    async def check_for_client(self, address: str, rule: Rule, key: str, cost: int) -> Decision:
        """A client's check of `rule` for `key`. Through the gateway (`address`, the one it saw), the address
        first pays one request into the per-address ceiling, the counter the gateway's filter charges on
        every other route: refused with ResourceExhaustedError, and `key` not charged, once that is spent.
        A call straight to the service (no address) is not charged."""
        ceiling = self._rules.find(ADDRESS_CEILING_RULE) if address else None
        if ceiling is not None:
            spent = await self._limiter.decide(ceiling, client_key({"remote_address": address}), 1)
            if not spent.allowed:
                raise ResourceExhaustedError(
                    f"rate limit exceeded: this address's {ceiling.limit} requests per "
                    f"{ceiling.period_ms / 1000:g} s (rule {ceiling.name}); "
                    "retry after the seconds in Retry-After",
                    retry_after_seconds=spent.retry_after_ms / 1000,
                    metadata={"rule": ceiling.name},
                )
        return await self._limiter.decide(rule, key, cost)
