"""API keys: made, listed and revoked in Redis, and known to every process through an in-memory cache.

Only the SHA-256 of a key's secret is stored (the secret is generated, 32 random bytes, so a fast hash
is enough: there is nothing to guess). Every process keeps the keys in memory, so checking one costs a
hash and a dict look-up, never a Redis read. A change is published on `<prefix>:keys:changed`; every
cache re-reads at once on the message and, in case one was missed, every `refresh_seconds` too, so a
revoked key stops working within that bound everywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import cast

from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.access.scopes import Scope, parse_scopes
from services.runtime.errors import ConflictError, InvalidArgumentError, NotFoundError

logger = logging.getLogger(__name__)

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
NAME_RULE = "1 to 63 characters: lower-case letters, digits and '-', starting with a letter"
RULE_PATTERN = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")
MAX_KEYS = 1000
MAX_SECRET_LENGTH = 256
SECRET_PREFIX = "sb_"  # noqa: S105 - the prefix of generated secrets, not a secret


@dataclass(frozen=True)
class ApiKey:
    name: str
    scopes: frozenset[Scope]
    create_time_ms: int
    rate_limit_rule: str = ""
    seeded: bool = False
    """Came from configuration (SWITCHBOARD_API_KEYS), not from the API."""


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret(name: str) -> str:
    return f"{SECRET_PREFIX}{name}_{secrets.token_urlsafe(32)}"


def check_name(name: str) -> None:
    if not NAME_PATTERN.match(name):
        raise InvalidArgumentError.for_field("name", NAME_RULE)


def check_scopes(names: Iterable[str]) -> frozenset[Scope]:
    names = list(names)
    if not names:
        raise InvalidArgumentError.for_field("scopes", f"give one or more of: {', '.join(Scope)}")
    if len(names) > len(Scope):
        raise InvalidArgumentError.for_field("scopes", f"at most {len(Scope)} scopes")
    try:
        return parse_scopes(names)
    except ValueError as error:
        raise InvalidArgumentError.for_field("scopes", str(error)) from None


def check_rule(rule: str) -> None:
    if rule and not RULE_PATTERN.match(rule):
        raise InvalidArgumentError.for_field(
            "rate_limit_rule", "a rule name: 1 to 128 letters, digits, '_', '.', ':' or '-'"
        )


@dataclass(frozen=True)
class SeedKey:
    name: str
    secret: str
    scopes: frozenset[Scope]


def parse_seed(text: str, *, source: str = "SWITCHBOARD_API_KEYS") -> list[SeedKey]:
    """`name=secret:scope1+scope2,...` (commas or new lines between keys) → the keys to seed."""
    seeds: list[SeedKey] = []
    for number, raw_item in enumerate(re.split(r"[,\n]", text), start=1):
        item = raw_item.strip()
        if not item or item.startswith("#"):
            continue
        name, eq, rest = item.partition("=")
        secret, colon, scopes_text = rest.partition(":")  # scopes hold colons; a secret may not
        where = f"{source}, entry {number}"
        if not eq or not colon or not secret:
            raise ValueError(f"{where}: expected `name=secret:scope1+scope2`")
        if not NAME_PATTERN.match(name.strip()):
            raise ValueError(f"{where}: key name {name.strip()!r}: {NAME_RULE}")
        if not 24 <= len(secret) <= MAX_SECRET_LENGTH:
            raise ValueError(
                f"{where} ({name.strip()}): the secret must be 24 to {MAX_SECRET_LENGTH} characters "
                "(e.g. `openssl rand -hex 24`)"
            )
        try:
            scopes = parse_scopes([s for s in scopes_text.split("+") if s])
        except ValueError as error:
            raise ValueError(f"{where} ({name.strip()}): {error}") from None
        if not scopes:
            raise ValueError(f"{where} ({name.strip()}): name at least one scope after ':'")
        seeds.append(SeedKey(name.strip(), secret, scopes))
    return seeds


def _encode(key: ApiKey, digest: str) -> str:
    return json.dumps(
        {
            "sha256": digest,
            "scopes": sorted(key.scopes),
            "create_time_ms": key.create_time_ms,
            "rule": key.rate_limit_rule,
            "seeded": key.seeded,
        }
    )


def _decode(name: str, raw: str) -> tuple[ApiKey, str]:
    document = json.loads(raw)
    key = ApiKey(
        name=name,
        scopes=frozenset(Scope(s) for s in document["scopes"] if s in Scope.__members__.values()),
        create_time_ms=int(document["create_time_ms"]),
        rate_limit_rule=str(document.get("rule", "")),
        seeded=bool(document.get("seeded", False)),
    )
    return key, str(document["sha256"])


class KeyStore:
    """The keys in one Redis hash `<prefix>:keys` (name → its record with the secret's digest)."""

    def __init__(self, redis: Redis, *, prefix: str) -> None:
        self._redis = redis
        self.key = f"{prefix}:keys"
        self.channel = f"{prefix}:keys:changed"

    async def create(
        self, name: str, scopes: Iterable[str], *, rate_limit_rule: str = ""
    ) -> tuple[ApiKey, str]:
        """A new key and its secret (the only time the secret exists outside the caller)."""
        check_name(name)
        parsed = check_scopes(scopes)
        check_rule(rate_limit_rule)
        if await self._redis.hlen(self.key) >= MAX_KEYS:
            raise InvalidArgumentError(f"there are already {MAX_KEYS} keys: revoke unused ones first")
        secret = new_secret(name)
        key = ApiKey(name, parsed, int(time.time() * 1000), rate_limit_rule)
        created = await self._redis.hsetnx(self.key, name, _encode(key, hash_secret(secret)))
        if not created:
            raise ConflictError(
                f"a key named {name!r} exists: revoke it first (DELETE /api/keys/{name}) "
                "or pick another name",
                reason="KEY_EXISTS",
            )
        await self._publish()
        return key, secret

    async def list(self) -> list[ApiKey]:
        return sorted((key for key, _ in (await self._read()).values()), key=lambda k: k.name)

    async def revoke(self, name: str) -> None:
        check_name(name)
        if not await self._redis.hdel(self.key, name):
            raise NotFoundError(f"no key named {name!r}: GET /api/keys lists them", reason="KEY_NOT_FOUND")
        await self._publish()

    async def seed(self, seeds: Iterable[SeedKey]) -> None:
        """Writes configured keys (replacing a seeded key of the same name, never an API-made one)."""
        existing = await self._read()
        now = int(time.time() * 1000)
        changed = False
        for seed in seeds:
            digest = hash_secret(seed.secret)
            current = existing.get(seed.name)
            if current is not None and not current[0].seeded:
                logger.warning("configured key not seeded: a key of that name was made through the API",
                               extra={"key": seed.name})  # fmt: skip
                continue
            if current is not None and current[1] == digest and current[0].scopes == seed.scopes:
                continue
            key = ApiKey(seed.name, seed.scopes, now, seeded=True)
            await self._redis.hset(self.key, seed.name, _encode(key, digest))
            changed = True
        if changed:
            await self._publish()

    async def read_digests(self) -> dict[str, ApiKey]:
        """Digest of the secret → key, for the cache."""
        return {digest: key for key, digest in (await self._read()).values()}

    async def _read(self) -> dict[str, tuple[ApiKey, str]]:
        raw = cast(Mapping[bytes, bytes], await self._redis.hgetall(self.key))
        records = {}
        for name, value in raw.items():
            try:
                records[name.decode()] = _decode(name.decode(), value.decode())
            except (ValueError, KeyError, TypeError):
                logger.warning("unreadable key record skipped", extra={"key": name.decode(errors="replace")})
        return records

    async def _publish(self) -> None:
        await self._redis.publish(self.channel, "changed")


class KeyCache:
    """Every key in memory, by the digest of its secret; kept fresh by pub/sub and a periodic re-read."""

    def __init__(self, store: KeyStore, *, refresh_seconds: float = 1.0) -> None:
        self._store = store
        self._refresh_seconds = refresh_seconds
        self._by_digest: dict[str, ApiKey] = {}
        self._changed = asyncio.Event()
        self.loaded = False

    def lookup(self, secret: str) -> ApiKey | None:
        if not secret or len(secret) > MAX_SECRET_LENGTH:
            return None
        return self._by_digest.get(hash_secret(secret))

    async def refresh(self) -> None:
        self._by_digest = await self._store.read_digests()
        self.loaded = True

    async def keep_fresh(self, redis: Redis) -> None:
        """Runs for the life of the process: re-reads on every change message and every interval."""
        listener = asyncio.create_task(self._listen(redis))
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), self._refresh_seconds)
                self._changed.clear()
                try:
                    await self.refresh()
                except RedisError:
                    # Keep the last known keys: a Redis outage must not lock every key out (or let any in).
                    logger.warning("keys not refreshed: Redis unreachable")
        finally:
            # Bounded: redis-py's pub/sub can swallow a cancellation that lands while it connects.
            listener.cancel()
            await asyncio.wait([listener], timeout=1.0)

    async def _listen(self, redis: Redis) -> None:
        while True:
            try:
                async with redis.pubsub() as pubsub:
                    await pubsub.subscribe(self._store.channel)
                    self._changed.set()  # anything published before we listened
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self._changed.set()
            except RedisError:
                await asyncio.sleep(self._refresh_seconds)
