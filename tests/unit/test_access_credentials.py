"""Admin credentials: weak passwords refused with what is required, htpasswd `{SHA}` parsed, Basic checked."""

from __future__ import annotations

import base64
import hashlib

import pytest

from services.access.credentials import (
    AdminCredentials,
    CredentialsError,
    basic_header,
    check_password_strength,
    parse_basic,
)

STRONG = "tR7#kq2Lx9!vB4wz"


_WEAK = ["short", "admin", "changeme", "Password1234", "123456789012", "aaaaaaaaaaaaaaa", "Switchboard123"]


@pytest.mark.parametrize("weak", _WEAK)
def test_a_weak_password_is_refused_saying_what_is_required(weak: str) -> None:
    with pytest.raises(CredentialsError, match="at least 12"):
        check_password_strength(weak)


def test_a_strong_password_logs_in_and_nothing_else_does() -> None:
    credentials = AdminCredentials.from_password("alice", STRONG)
    assert credentials.verify("alice", STRONG)
    assert not credentials.verify("alice", STRONG + "x")
    assert not credentials.verify("bob", STRONG)
    assert not credentials.verify("alice", "")


def _sha_entry(user: str, password: str) -> str:
    digest = hashlib.sha1(password.encode()).digest()  # noqa: S324 - the format Envoy's basic_auth reads
    return f"{user}:{{SHA}}{base64.b64encode(digest).decode()}"


def test_an_htpasswd_file_of_sha_entries_is_read() -> None:
    text = "# admins\n" + _sha_entry("alice", STRONG) + "\n" + _sha_entry("bob", "other-pass-phrase") + "\n"
    credentials = AdminCredentials.from_htpasswd(text)
    assert credentials.verify("alice", STRONG)
    assert credentials.verify("bob", "other-pass-phrase")
    assert not credentials.verify("bob", STRONG)


@pytest.mark.parametrize(
    "line", ["alice:$apr1$abc$def", "alice:{SHA}not-base64!!", "alice", "alice:{SHA}QUJD"]
)
def test_an_htpasswd_entry_we_cannot_check_is_refused_with_the_line(line: str) -> None:
    with pytest.raises(CredentialsError, match="line 1"):
        AdminCredentials.from_htpasswd(line)


def test_the_htpasswd_file_wins_and_a_missing_one_is_named(tmp_path: object) -> None:
    with pytest.raises(CredentialsError, match="cannot be read"):
        AdminCredentials.from_config(user="admin", password=STRONG, htpasswd_file="/nonexistent/htpasswd")
    assert not AdminCredentials.from_config(user="admin", password=None, htpasswd_file=None).configured


def test_basic_values_round_trip_and_junk_is_not_a_login() -> None:
    assert parse_basic(basic_header("alice", "pa:ss")) == ("alice", "pa:ss")
    assert parse_basic("basic " + base64.b64encode(b"a:b").decode()) == ("a", "b")
    for junk in ["", "Bearer abc", "Basic", "Basic !!!", "Basic " + base64.b64encode(b"nocolon").decode()]:
        assert parse_basic(junk) is None
