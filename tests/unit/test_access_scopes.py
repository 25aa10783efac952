"""Every RPC says who may call it: the one table covers every method of every Switchboard service."""

from __future__ import annotations

from google.protobuf import descriptor_pool

from services.access.scopes import REQUIREMENTS, Scope, parse_scopes
from switchboard.admin.v1 import connection_pb2, settings_pb2
from switchboard.analytics.v1 import analytics_pb2
from switchboard.bigquery.v1 import bigquery_pb2
from switchboard.jobs.v1 import jobs_pb2
from switchboard.ratelimit.v1 import ratelimit_pb2

_FILES = (connection_pb2, settings_pb2, analytics_pb2, bigquery_pb2, jobs_pb2, ratelimit_pb2)


def _every_method() -> set[str]:
    pool = descriptor_pool.Default()
    methods: set[str] = set()
    for module in _FILES:
        for service in pool.FindFileByName(module.DESCRIPTOR.name).services_by_name.values():
            methods.update(f"/{service.full_name}/{method.name}" for method in service.methods)
    return methods


def test_every_rpc_has_a_requirement_and_none_is_stale() -> None:
    methods = _every_method()
    assert sorted(methods - set(REQUIREMENTS)) == [], "add the new RPC to services/access/scopes.py"
    assert sorted(set(REQUIREMENTS) - methods) == [], "an RPC in the table no longer exists"


def test_the_admin_operations_of_the_issue_are_admin_only() -> None:
    admin = {name.rsplit("/", 1)[1] for name, need in REQUIREMENTS.items() if need is Scope.ADMIN}
    assert {"PauseQueue", "ResumeQueue", "CleanQueue", "PutRule", "DeleteRule", "UpdateSettings"} <= admin


def test_an_unknown_scope_is_named() -> None:
    assert parse_scopes(["jobs:read", "admin"]) == {Scope.JOBS_READ, Scope.ADMIN}
    try:
        parse_scopes(["jobs:raed"])
    except ValueError as error:
        assert "jobs:raed" in str(error)
        assert "jobs:read" in str(error)
    else:
        raise AssertionError("an unknown scope was accepted")
