"""Who a call comes from: an admin (a person), an API key (a program), a service, or nobody."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from services.access.scopes import Scope


class PrincipalKind(enum.StrEnum):
    ADMIN = "admin"
    API_KEY = "key"
    SERVICE = "service"
    ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class Principal:
    kind: PrincipalKind
    name: str
    """The admin's user name, the key's name, the service's name; for nobody, the client address."""
    scopes: frozenset[Scope] = field(default_factory=frozenset)
    rate_limit_rule: str = ""
    """A key's own rule (its tier), if it names one."""

    @property
    def label(self) -> str:
        """How audit records and logs name the caller: `admin:alice`, `key:billing`, `service:analytics`."""
        return f"{self.kind.value}:{self.name}"

    def has(self, scope: Scope) -> bool:
        return Scope.ADMIN in self.scopes or scope in self.scopes


def anonymous(address: str) -> Principal:
    return Principal(PrincipalKind.ANONYMOUS, address[:128] or "unknown")
