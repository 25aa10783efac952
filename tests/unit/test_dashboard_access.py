"""The dashboard's checks: who may look (admins, 401 with the login prompt otherwise), what makes a write
same-origin and token-bearing, and the gateway route that sends dashboard paths to the admin check."""

from __future__ import annotations

import pytest

from services.access.credentials import AdminCredentials, basic_header
from services.access.guard import Guard
from services.access.routes import RouteMap
from services.access.scopes import Scope
from services.admin.dashboard.access import (
    GATEWAY_METHOD,
    GATEWAY_ROUTES,
    DashboardAccess,
    Refusal,
    token_secret,
)

PASSWORD = "a-long-random-password-1"
HOST = "gateway.example:8080"


def _access(secret: bytes | None = None) -> DashboardAccess:
    guard = Guard(
        admin=AdminCredentials.from_password("alice", PASSWORD),
        keys=None,
        service_key=None,
        require_api_keys=False,
    )
    return DashboardAccess(guard, secret=secret)


def _login(access: DashboardAccess, password: str = PASSWORD) -> dict[str, str]:
    return {"authorization": basic_header("alice", password), "host": HOST}


def test_an_admin_is_let_in_and_their_calls_carry_their_credentials() -> None:
    access = _access()
    operator = access.operator(_login(access), "10.0.0.1")
    assert operator.principal.label == "admin:alice"
    assert operator.metadata == (("authorization", basic_header("alice", PASSWORD)),)


@pytest.mark.parametrize("headers", [{}, {"authorization": basic_header("alice", "wrong-password-here")},
                                     {"authorization": "Bearer x"}])  # fmt: skip
def test_no_or_wrong_credentials_are_refused_with_401(headers: dict[str, str]) -> None:
    with pytest.raises(Refusal) as refused:
        _access().operator(headers, "10.0.0.1")
    assert refused.value.status == 401


def test_a_write_needs_the_same_origin_and_the_token_of_these_credentials() -> None:
    access = _access()
    operator = access.operator(_login(access), "10.0.0.1")
    same = {"host": HOST, "origin": f"http://{HOST}"}
    access.check_write(operator, same, operator.csrf_token)
    access.check_write(
        operator, {"host": HOST, "referer": f"https://{HOST}/api/bull-board/"}, operator.csrf_token
    )
    refused = [
        ({"host": HOST, "origin": "https://evil.example"}, operator.csrf_token),
        ({"host": HOST, "origin": "null"}, operator.csrf_token),
        ({"host": HOST}, operator.csrf_token),
        ({"host": HOST, "origin": f"http://{HOST}.evil.example"}, operator.csrf_token),
        (same, ""),
        (same, "0" * 40),
        (same, access.csrf_token(basic_header("mallory", "another-password-1"))),
    ]
    for headers, token in refused:
        with pytest.raises(Refusal) as refusal:
            access.check_write(operator, headers, token)
        assert refusal.value.status == 403, headers


def test_tokens_are_shared_by_replicas_of_one_deployment_only() -> None:
    credential = basic_header("alice", PASSWORD)
    one, two = _access(token_secret("k" * 32)), _access(token_secret("k" * 32))
    assert one.csrf_token(credential) == two.csrf_token(credential)
    assert _access(token_secret("z" * 32)).csrf_token(credential) != one.csrf_token(credential)
    assert _access().csrf_token(credential) != _access().csrf_token(credential)  # per process without a key


def test_the_gateway_checks_every_dashboard_path_as_an_admin_operation() -> None:
    routes = RouteMap(GATEWAY_ROUTES)
    paths = [
        ("GET", "/api/bull-board/"),
        ("GET", "/api/bull-board/queues/analytics?state=failed"),
        ("POST", "/api/bull-board/jobs/x/retry"),
        ("GET", "/api/bull-board/static/dashboard.css"),
    ]
    for verb, path in paths:
        match = routes.match(verb, path)
        assert match is not None and match.method == GATEWAY_METHOD, path
    assert Guard.requirement(GATEWAY_METHOD) is Scope.ADMIN
    assert routes.match("GET", "/bull-board") is None  # the redirect needs nothing
