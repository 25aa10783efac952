"""The admin's credentials: where they come from, which are refused as too weak, and how a login is checked.

Either a user and a password (`SWITCHBOARD_ADMIN_USER`, `SWITCHBOARD_ADMIN_PASSWORD`) or an htpasswd file
of `{SHA}` entries (the one hash Envoy's basic_auth accepts, so one file serves both). Every comparison
runs in constant time; the password itself is kept only as a digest.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

MIN_PASSWORD_LENGTH = 12
MAX_USER_LENGTH = 64
MAX_PASSWORD_LENGTH = 1024

# Passwords that every guessing list starts with; compared lower-cased.
WELL_KNOWN_PASSWORDS = frozenset(
    {
        "admin",
        "administrator",
        "password",
        "password123",
        "password1234",
        "changeme",
        "changeme123",
        "secret",
        "letmein",
        "qwerty",
        "qwertyuiop",
        "123456789012",
        "1234567890123",
        "switchboard",
        "switchboard1",
        "switchboard123",
        "adminadmin",
        "adminadminadmin",
        "passwordpassword",
        "correcthorsebatterystaple",
    }
)


class CredentialsError(ValueError):
    """The configured admin credentials cannot be used; the message says what is required."""


def check_password_strength(password: str) -> None:
    """Refuses a password an attacker would try first; the message says what is required."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise CredentialsError(
            f"SWITCHBOARD_ADMIN_PASSWORD is too short ({len(password)} characters): use at least "
            f"{MIN_PASSWORD_LENGTH}, e.g. `openssl rand -base64 18`"
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise CredentialsError(f"SWITCHBOARD_ADMIN_PASSWORD is longer than {MAX_PASSWORD_LENGTH} characters")
    if password.lower() in WELL_KNOWN_PASSWORDS or len(set(password)) < 4:
        raise CredentialsError(
            "SWITCHBOARD_ADMIN_PASSWORD is a well-known default or too repetitive: choose a random one "
            f"of at least {MIN_PASSWORD_LENGTH} characters, e.g. `openssl rand -base64 18`"
        )


def sha_digest(password: str) -> bytes:
    """The SHA-1 digest an htpasswd `{SHA}` entry holds (base64 encoded there)."""
    return hashlib.sha1(password.encode(), usedforsecurity=False).digest()


@dataclass(frozen=True)
class AdminCredentials:
    """Admin user name → digest of the password. Empty: no admin can log in (admin RPCs are refused)."""

    digests: Mapping[str, bytes]

    @classmethod
    def from_password(cls, user: str, password: str) -> AdminCredentials:
        _check_user(user)
        check_password_strength(password)
        return cls({user: sha_digest(password)})

    @classmethod
    def from_htpasswd(cls, text: str, *, source: str = "the htpasswd file") -> AdminCredentials:
        digests: dict[str, bytes] = {}
        for number, raw_line in enumerate(text.splitlines(), start=1):
            line = raw_line.strip()
            if not line or line.startswith("#"):
                continue
            user, sep, hashed = line.partition(":")
            if not sep or not hashed.startswith("{SHA}"):
                raise CredentialsError(
                    f"{source}, line {number}: expected `user:{{SHA}}<base64 SHA-1>` "
                    "(`htpasswd -s`; bcrypt and MD5 entries are not supported)"
                )
            _check_user(user)
            try:
                digest = base64.b64decode(hashed[len("{SHA}") :], validate=True)
            except binascii.Error:
                raise CredentialsError(f"{source}, line {number}: the {{SHA}} value is not base64") from None
            if len(digest) != hashlib.sha1(usedforsecurity=False).digest_size:
                raise CredentialsError(f"{source}, line {number}: the {{SHA}} value is not a SHA-1 digest")
            digests[user] = digest
        if not digests:
            raise CredentialsError(f"{source} has no `user:{{SHA}}...` entry")
        return cls(digests)

    @classmethod
    def from_config(cls, *, user: str, password: str | None, htpasswd_file: str | None) -> AdminCredentials:
        """From the settings: the htpasswd file wins when given; neither → no admin login."""
        if htpasswd_file:
            try:
                text = Path(htpasswd_file).read_text()
            except OSError as error:
                raise CredentialsError(
                    f"SWITCHBOARD_ADMIN_HTPASSWD_FILE={htpasswd_file!r} cannot be read ({error.strerror})"
                ) from None
            return cls.from_htpasswd(text, source=f"SWITCHBOARD_ADMIN_HTPASSWD_FILE ({htpasswd_file})")
        if password is not None:
            return cls.from_password(user, password)
        return cls({})

    @property
    def configured(self) -> bool:
        return bool(self.digests)

    def verify(self, user: str, password: str) -> bool:
        """True when `user` exists and `password` is theirs; constant time in the password."""
        expected = self.digests.get(user)
        candidate = sha_digest(password[:MAX_PASSWORD_LENGTH])
        if expected is None:
            # Compare anyway, so an unknown user takes as long as a wrong password.
            hmac.compare_digest(candidate, candidate)
            return False
        return hmac.compare_digest(candidate, expected)


def _check_user(user: str) -> None:
    if not user or len(user) > MAX_USER_LENGTH or ":" in user or not user.isprintable():
        raise CredentialsError(
            f"the admin user name must be 1 to {MAX_USER_LENGTH} printable characters without ':'"
        )


def parse_basic(header: str) -> tuple[str, str] | None:
    """`Basic base64(user:password)` → (user, password); None when it is not a well-formed Basic value."""
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic" or not value or len(value) > 4 * MAX_PASSWORD_LENGTH:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    if not sep:
        return None
    return user, password


def basic_header(user: str, password: str) -> str:
    """The `authorization` value a client sends for `user`/`password`."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
