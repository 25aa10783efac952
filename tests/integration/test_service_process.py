"""A service as a real process: graceful SIGTERM, and its Redis connections within the cap."""

from __future__ import annotations

import secrets
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from devstack.redis import RedisServer
from devstack.services import ServiceProcess
from switchboard.admin.v1 import connection_pb2, connection_pb2_grpc, keys_pb2, keys_pb2_grpc
from switchboard.jobs.v1 import jobs_pb2, jobs_pb2_grpc
from tests.integration.conftest import BlackHole


def _admin(redis_server: RedisServer, run_dir: Path, **env: str) -> ServiceProcess:
    service = ServiceProcess(
        "admin",
        run_dir=run_dir,
        env={"REDIS_PORT": str(redis_server.port), "HEALTH_CHECK_INTERVAL_SECONDS": "0.1", **env},
    )
    service.start()
    service.wait_ready()
    return service


def test_sigterm_turns_health_off_finishes_calls_in_flight_and_exits_0(
    redis_server: RedisServer, tmp_path: Path, black_hole: BlackHole
) -> None:
    # Every sibling check hits the black hole, so a connection test stays in flight for its full timeout.
    admin = _admin(
        redis_server,
        tmp_path,
        JOBS_ADDRESS=black_hole.address,
        RATELIMIT_ADDRESS=black_hole.address,
        BIGQUERY_ADDRESS=black_hole.address,
        ANALYTICS_ADDRESS=black_hole.address,
        CONNECTION_TEST_TIMEOUT_SECONDS="1.5",
    )
    try:
        with grpc.insecure_channel(admin.address) as channel:
            watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""))
            assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
            in_flight = connection_pb2_grpc.ConnectionServiceStub(channel).TestConnection.future(
                connection_pb2.TestConnectionRequest(), timeout=10
            )
            black_hole.wait_for_connections(1)  # the sibling probes (one shared subchannel) now hang

            admin.process.signal(signal.SIGTERM)

            assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
            watch.cancel()
            report = in_flight.result()
            assert not report.ok, "the call in flight finished with its (failed) report"
            assert {c.name for c in report.checks if not c.ok} == {
                "jobs-service", "ratelimit-service", "bigquery-service", "analytics-service"
            }  # fmt: skip
        assert admin.process.wait(timeout=15) == 0
    finally:
        admin.stop()


def test_concurrent_calls_stay_within_redis_max_connections(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    admin = _admin(redis_server, tmp_path, REDIS_MAX_CONNECTIONS="3")
    peak = 0
    stop = threading.Event()

    def count_admin_connections() -> None:
        nonlocal peak
        client = redis_server.client()
        while not stop.is_set():
            names = [entry.get("name", "") for entry in client.client_list()]
            peak = max(peak, sum(1 for name in names if name.endswith(f":{admin.process.pid}")))
        client.close()

    counter = threading.Thread(target=count_admin_connections)
    counter.start()
    try:
        with grpc.insecure_channel(admin.address) as channel:
            stub = connection_pb2_grpc.ConnectionServiceStub(channel)
            with ThreadPoolExecutor(32) as pool:
                reports = list(
                    pool.map(
                        lambda _: stub.TestConnection(connection_pb2.TestConnectionRequest(), timeout=20),
                        range(200),
                    )
                )
    finally:
        stop.set()
        counter.join()
        admin.stop()
    redis_checks = [next(c for c in r.checks if c.name == "redis") for r in reports]
    assert all(check.ok for check in redis_checks), "every call got its Redis answer"
    assert 1 <= peak <= 3


def test_the_jobs_service_starts_and_serves_with_a_bad_settings_document(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    client = redis_server.client()
    client.set("badsettings:settings", '{"version": "x"}')
    client.close()
    jobs = ServiceProcess(
        "jobs",
        run_dir=tmp_path,
        env={"REDIS_PORT": str(redis_server.port), "JOBS_KEY_PREFIX": "badsettings"},
    )
    jobs.start()
    try:
        jobs.wait_ready()
        with grpc.insecure_channel(jobs.address) as channel:
            health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""))
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            queues = jobs_pb2_grpc.JobsServiceStub(channel).ListQueues(
                jobs_pb2.ListQueuesRequest(), timeout=5
            )
            assert {queue.name for queue in queues.queues} == {"analytics", "bigquery", "ratelimit"}
        assert "version" in jobs.process.log_path.read_text(), "what is wrong with the document is logged"
    finally:
        jobs.stop()


def test_a_weak_admin_password_stops_every_service_at_start_saying_what_is_required(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    for name in ("jobs", "admin"):
        service = ServiceProcess(
            name,
            run_dir=tmp_path,
            env={"REDIS_PORT": str(redis_server.port), "SWITCHBOARD_ADMIN_PASSWORD": "changeme"},
        )
        service.start()
        try:
            exit_code = service.process.wait(timeout=30)
        finally:
            service.stop()
        log = service.process.log_path.read_text()
        assert exit_code != 0, (name, log)
        assert "SWITCHBOARD_ADMIN_PASSWORD is too short" in log and "at least 12" in log, (name, log)
        assert "changeme" not in log, "the refused password itself is not logged"


def test_keys_seeded_from_the_variable_and_a_mounted_file_work_from_the_start(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    from_file = "ops-" + secrets.token_hex(16)
    keys_file = tmp_path / "api-keys"
    keys_file.write_text(f"# mounted from a Secret\nops={from_file}:admin\n")
    from_env = "ci-" + secrets.token_hex(16)
    admin = _admin(
        redis_server,
        tmp_path,
        SWITCHBOARD_ACCESS_KEY_PREFIX=f"seed-{secrets.token_hex(4)}",
        SWITCHBOARD_API_KEYS=f"ci={from_env}:jobs:read+jobs:write",
        SWITCHBOARD_API_KEYS_FILE=str(keys_file),
    )
    try:
        with grpc.insecure_channel(admin.address) as channel:
            keys = keys_pb2_grpc.KeysServiceStub(channel)
            listed = keys.ListKeys(
                keys_pb2.ListKeysRequest(), metadata=(("x-api-key", from_file),), timeout=5
            )
            assert {(key.name, tuple(key.scopes)) for key in listed.keys} == {
                ("ops", ("admin",)),
                ("ci", ("jobs:read", "jobs:write")),
            }
            with pytest.raises(grpc.RpcError) as refused:
                keys.ListKeys(keys_pb2.ListKeysRequest(), metadata=(("x-api-key", from_env),), timeout=5)
            assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED, "ci's key is no admin"
        log = admin.process.log_path.read_text()
        assert from_file not in log and from_env not in log, "no secret in the log"
    finally:
        admin.stop()
