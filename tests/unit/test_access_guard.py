"""The guard: who a call is from and whether it may run, in open and locked mode, for every kind of caller."""

from __future__ import annotations

import pytest

from services.access.credentials import AdminCredentials, basic_header
from services.access.guard import Credentials, Guard, gateway_client_address
from services.access.keys import ApiKey, KeyCache, hash_secret, parse_seed
from services.access.principal import PrincipalKind
from services.access.scopes import Scope
from services.runtime.errors import PermissionDeniedError, UnauthenticatedError

PASSWORD = "tR7#kq2Lx9!vB4wz"
SERVICE_KEY = "s" * 10 + "0123456789abcdefghij"
PAUSE = "/switchboard.jobs.v1.JobsService/PauseQueue"
SUBMIT = "/switchboard.jobs.v1.JobsService/SubmitJob"
HEALTHY = "/switchboard.admin.v1.ConnectionService/TestConnection"


class _Keys(KeyCache):
    def __init__(self, keys: dict[str, ApiKey]) -> None:
        self._by_digest = {hash_secret(secret): key for secret, key in keys.items()}


def _guard(*, locked: bool) -> Guard:
    keys = _Keys({
        "sb_jobs_secret": ApiKey("jobs-bot", frozenset({Scope.JOBS_WRITE}), 0),
        "sb_root_secret": ApiKey("root", frozenset({Scope.ADMIN}), 0),
    })  # fmt: skip
    return Guard(
        admin=AdminCredentials.from_password("admin", PASSWORD),
        keys=keys,
        service_key=SERVICE_KEY,
        require_api_keys=locked,
    )


@pytest.mark.parametrize("locked", [False, True])
def test_admin_rpcs_need_admin_in_both_modes(locked: bool) -> None:
    guard = _guard(locked=locked)
    with pytest.raises(UnauthenticatedError, match="admin credentials"):
        guard.admit(PAUSE, Credentials(source="10.0.0.1"))
    with pytest.raises(UnauthenticatedError, match="wrong admin user or password"):
        guard.admit(PAUSE, Credentials(authorization=basic_header("admin", PASSWORD + "!")))
    with pytest.raises(PermissionDeniedError, match="no `admin` scope"):
        guard.admit(PAUSE, Credentials(api_key="sb_jobs_secret"))
    with pytest.raises(PermissionDeniedError):
        guard.admit(PAUSE, Credentials(service_key=SERVICE_KEY))
    assert (
        guard.admit(PAUSE, Credentials(authorization=basic_header("admin", PASSWORD))).kind
        is PrincipalKind.ADMIN
    )
    assert guard.admit(PAUSE, Credentials(api_key="sb_root_secret")).name == "root"


def test_forged_identity_headers_do_not_count() -> None:
    # Only credentials the guard verifies itself exist for it; there is no header naming a principal.
    with pytest.raises(UnauthenticatedError):
        _guard(locked=False).admit(PAUSE, Credentials(service_key="x" * 30))


def test_locked_mode_no_key_401_wrong_scope_403_right_scope_passes() -> None:
    guard = _guard(locked=True)
    with pytest.raises(UnauthenticatedError, match="jobs:write"):
        guard.admit(SUBMIT, Credentials())
    with pytest.raises(UnauthenticatedError, match="unknown or revoked"):
        guard.admit(SUBMIT, Credentials(api_key="sb_nope"))
    with pytest.raises(PermissionDeniedError, match="jobs:read"):
        guard.admit("/switchboard.jobs.v1.JobsService/ListJobs", Credentials(api_key="sb_jobs_secret"))
    assert guard.admit(SUBMIT, Credentials(api_key="sb_jobs_secret")).name == "jobs-bot"
    assert guard.admit(SUBMIT, Credentials(service_key=SERVICE_KEY)).kind is PrincipalKind.SERVICE
    assert guard.admit(HEALTHY, Credentials()).kind is PrincipalKind.ANONYMOUS


def test_open_mode_lets_any_x_api_key_through_as_an_identity_only() -> None:
    guard = _guard(locked=False)
    assert guard.admit(SUBMIT, Credentials(api_key="whatever-client-id")).kind is PrincipalKind.ANONYMOUS
    assert guard.admit(SUBMIT, Credentials()).kind is PrincipalKind.ANONYMOUS


def test_an_rpc_missing_from_the_table_is_admin_only() -> None:
    assert Guard.requirement("/x.v1.New/Thing") is Scope.ADMIN


def test_a_short_service_key_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="SWITCHBOARD_SERVICE_KEY"):
        Guard(admin=AdminCredentials({}), keys=None, service_key="short", require_api_keys=False)


def test_seeded_keys_parse_and_bad_entries_are_named() -> None:
    seeds = parse_seed("billing=" + "b" * 24 + ":jobs:read+jobs:write, ops=" + "o" * 30 + ":admin")
    assert [(s.name, sorted(s.scopes)) for s in seeds] == [
        ("billing", ["jobs:read", "jobs:write"]), ("ops", ["admin"])
    ]  # fmt: skip
    for bad, says in [("billing", "expected"), ("Bad=" + "x" * 24 + ":admin", "key name"),
                      ("b=short:admin", "24 to"), ("b=" + "x" * 24 + ":jobs:raed", "jobs:raed")]:  # fmt: skip
        with pytest.raises(ValueError, match=says):
            parse_seed(bad)


def test_the_gateway_client_is_the_last_forwarded_entry_however_long_what_the_client_wrote() -> None:
    """The entries before the last are the client's to write. A long one used to push the entry the
    gateway appended out of the bounded read, so the client chose its audited address and its ceiling."""
    assert gateway_client_address("203.0.113.9") == "203.0.113.9"
    assert gateway_client_address("10.0.0.1, 203.0.113.9") == "203.0.113.9"
    forged = ", ".join(["198.51.100.66"] * 40)
    assert gateway_client_address(f"{forged}, 203.0.113.9") == "203.0.113.9"
    assert len(gateway_client_address("x" * 100_000)) <= 64, "still bounded"
