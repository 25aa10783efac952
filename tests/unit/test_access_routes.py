"""The gateway's route → RPC map, read from the descriptor set Envoy's transcoder reads."""

from __future__ import annotations

import pytest

from devstack.stack import DESCRIPTOR_PATH
from services.access.routes import Match, RouteMap
from services.access.scopes import REQUIREMENTS

JOBS = "/switchboard.jobs.v1.JobsService"


@pytest.fixture(scope="module")
def routes() -> RouteMap:
    return RouteMap.from_descriptor_set(DESCRIPTOR_PATH.read_bytes())


@pytest.mark.parametrize(
    ("verb", "path", "expected"),
    [
        ("POST", "/api/job", Match(f"{JOBS}/SubmitJob")),
        ("GET", "/api/job?queue=analytics&page_size=5", Match(f"{JOBS}/ListJobs")),
        ("GET", "/api/job/result?id=1", Match(f"{JOBS}/GetJobResult")),
        ("POST", "/api/queues/analytics/pause", Match(f"{JOBS}/PauseQueue", "analytics")),
        ("POST", "/api/queues/analytics/clean", Match(f"{JOBS}/CleanQueue", "analytics")),
        ("PUT", "/api/rate-limits/gold", Match("/switchboard.ratelimit.v1.RateLimitService/PutRule", "gold")),
        ("DELETE", "/api/keys/ci", Match("/switchboard.admin.v1.KeysService/DeleteKey", "ci")),
        ("GET", "/api/audit", Match("/switchboard.admin.v1.AuditService/ListAuditEntries")),
        ("PATCH", "/api/settings", Match("/switchboard.admin.v1.SettingsService/UpdateSettings")),
        ("POST", f"{JOBS}/PauseQueue", Match(f"{JOBS}/PauseQueue")),  # native gRPC
    ],
)
def test_rest_and_grpc_paths_map_to_their_rpc(
    routes: RouteMap, verb: str, path: str, expected: Match
) -> None:
    assert routes.match(verb, path) == expected


def test_a_path_of_no_rpc_and_a_wrong_verb_match_nothing(routes: RouteMap) -> None:
    assert routes.match("GET", "/api/nope") is None
    assert routes.match("GET", "/api/queues/analytics/pause") is None
    assert routes.match("POST", "/api/queues/analytics/pause/extra") is None


def test_every_rpc_the_gateway_can_reach_has_a_requirement(routes: RouteMap) -> None:
    ours = {m for m in routes.methods if m.startswith(("/switchboard.", "/envoy."))}
    assert ours <= set(REQUIREMENTS)
