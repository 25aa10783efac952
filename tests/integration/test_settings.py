"""Live settings over real gRPC (the admin service, the jobs service, real Redis, real worker processes):
the version check, validation, history, the queues' one paused flag, and changes reaching running workers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
from google.protobuf import field_mask_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from redis.asyncio import Redis

from devstack.ports import free_port
from services.access.context import bind_principal, reset_principal
from services.access.principal import Principal, PrincipalKind
from services.admin.queue_control import JobsQueueControl
from services.admin.server import build as build_admin
from services.admin.servicer import SettingsServicer
from services.admin.settings import AdminSettings
from services.admin.settings_manager import SettingsManager
from services.admin.settings_store import SettingsStore
from services.jobs.manager import JobManager, SubmitRequest
from services.jobs.model import JobState
from services.jobs.server import build as build_jobs
from services.jobs.settings import JobsSettings
from services.jobs.store import JobStore
from services.runtime.errors import UnavailableError
from services.runtime.redis_mux import RedisMux
from services.runtime.redis_pool import create_redis
from services.runtime.server import ServiceContext, start_server
from services.runtime.settings import PeerAddresses, RedisSettings
from switchboard.admin.v1 import settings_pb2, settings_pb2_grpc
from switchboard.jobs.v1 import jobs_pb2, jobs_pb2_grpc
from tests.integration.conftest import Workers
from tests.polling import eventually


@dataclass
class Apis:
    settings: settings_pb2_grpc.SettingsServiceStub
    jobs: jobs_pb2_grpc.JobsServiceStub
    admin_settings: AdminSettings
    context: ServiceContext


@pytest.fixture
async def apis(redis_client: Redis, redis_mux: RedisMux, key_prefix: str) -> AsyncIterator[Apis]:
    async with contextlib.AsyncExitStack() as stack:
        jobs_context = ServiceContext(
            redis=redis_client, redis_mux=redis_mux, exit_stack=contextlib.AsyncExitStack()
        )
        await stack.enter_async_context(jobs_context.exit_stack)
        jobs_server = await start_server(
            await build_jobs(JobsSettings(jobs_key_prefix=key_prefix), jobs_context), redis=redis_client
        )
        stack.push_async_callback(jobs_server.server.stop, 0)
        admin_settings = AdminSettings(
            jobs_key_prefix=key_prefix,
            settings_history_max_entries=10,
            peers=PeerAddresses(jobs_address=f"127.0.0.1:{jobs_server.port}"),
        )
        admin_context = ServiceContext(
            redis=redis_client, redis_mux=redis_mux, exit_stack=contextlib.AsyncExitStack()
        )
        await stack.enter_async_context(admin_context.exit_stack)
        admin_server = await start_server(
            await build_admin(admin_settings, admin_context), redis=redis_client
        )
        stack.push_async_callback(admin_server.server.stop, 0)
        admin_channel = await stack.enter_async_context(
            grpc.aio.insecure_channel(f"127.0.0.1:{admin_server.port}")
        )
        jobs_channel = await stack.enter_async_context(
            grpc.aio.insecure_channel(f"127.0.0.1:{jobs_server.port}")
        )
        yield Apis(
            settings_pb2_grpc.SettingsServiceStub(admin_channel),
            jobs_pb2_grpc.JobsServiceStub(jobs_channel),
            admin_settings,
            admin_context,
        )


def _update(
    version: int | None, settings: settings_pb2.Settings, *paths: str
) -> settings_pb2.UpdateSettingsRequest:
    """An update of `paths`; `version` None: no version check."""
    request = settings_pb2.UpdateSettingsRequest(
        settings=settings, update_mask=field_mask_pb2.FieldMask(paths=list(paths))
    )
    if version is not None:
        request.expected_version = version
    return request


def _with_attempts(queue: str, attempts: int) -> settings_pb2.Settings:
    settings = settings_pb2.Settings()
    settings.queue_policies[queue].max_attempts = attempts
    return settings


async def _error(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call  # type: ignore[misc]
    return raised.value


def _details(error: grpc.aio.AioRpcError) -> tuple[dict[str, str], dict[str, str]]:
    """(ErrorInfo metadata, field → violation description) of a rich error."""
    status = rpc_status.from_call(error)
    assert status is not None
    info, bad_request = error_details_pb2.ErrorInfo(), error_details_pb2.BadRequest()
    for detail in status.details:
        detail.Unpack(info) or detail.Unpack(bad_request)
    return dict(info.metadata), {v.field: v.description for v in bad_request.field_violations}


async def test_get_answers_every_setting_with_its_version(apis: Apis) -> None:
    settings = await apis.settings.GetSettings(settings_pb2.GetSettingsRequest())
    assert settings.version == 0
    assert (
        set(settings.queue_policies) == set(settings.queue_paused) == {"analytics", "bigquery", "ratelimit"}
    )
    assert settings.queue_policies["bigquery"].timeout.ToSeconds() == 900
    assert settings.bigquery.max_wait_ms == 30_000
    assert settings.diagnostics_enabled
    assert not settings.require_api_keys and not settings.dashboard_read_only


async def test_a_stale_version_is_refused_with_the_current_one(apis: Apis) -> None:
    first = await apis.settings.UpdateSettings(
        _update(0, _with_attempts("analytics", 7), "queue_policies.analytics.max_attempts")
    )
    assert (first.version, first.queue_policies["analytics"].max_attempts) == (1, 7)
    second = await apis.settings.UpdateSettings(
        _update(1, _with_attempts("analytics", 8), "queue_policies.analytics.max_attempts")
    )
    assert second.version == 2

    stale = await _error(
        apis.settings.UpdateSettings(
            _update(1, _with_attempts("analytics", 9), "queue_policies.analytics.max_attempts")
        )
    )
    assert stale.code() == grpc.StatusCode.ABORTED
    assert "at version 2, not 1" in str(stale.details())
    metadata, _ = _details(stale)
    assert metadata["current_version"] == "2"
    now = await apis.settings.GetSettings(settings_pb2.GetSettingsRequest())
    assert (now.version, now.queue_policies["analytics"].max_attempts) == (2, 8), (
        "the stale change was not made"
    )


async def test_concurrent_changes_at_one_version_one_wins(apis: Apis) -> None:
    await apis.settings.UpdateSettings(
        _update(0, _with_attempts("analytics", 10), "queue_policies.analytics.max_attempts")
    )
    racing = await asyncio.gather(
        *(
            apis.settings.UpdateSettings(
                _update(1, _with_attempts("bigquery", 3 + n), "queue_policies.bigquery.max_attempts")
            )
            for n in range(6)
        ),
        return_exceptions=True,
    )
    won = [outcome for outcome in racing if isinstance(outcome, settings_pb2.Settings)]
    lost = [outcome for outcome in racing if isinstance(outcome, grpc.aio.AioRpcError)]
    assert len(won) == 1 and won[0].version == 2
    assert len(lost) == 5 and {error.code() for error in lost} == {grpc.StatusCode.ABORTED}
    history = await apis.settings.ListSettingsHistory(settings_pb2.ListSettingsHistoryRequest())
    assert [revision.version for revision in history.revisions] == [2, 1], "one revision per version"


async def test_invalid_values_are_refused_naming_each_field_and_bound(
    apis: Apis, redis_client: Redis
) -> None:
    settings = _with_attempts("analytics", 0)
    settings.queue_policies["analytics"].timeout.FromMilliseconds(1)
    settings.bigquery.max_wait_ms = 10_000_000
    invalid = await _error(
        apis.settings.UpdateSettings(
            _update(
                0,
                settings,
                "queue_policies.analytics.max_attempts",
                "queue_policies.analytics.timeout",
                "bigquery.max_wait_ms",
                "queue_paused.mail",
            )
        )
    )
    assert invalid.code() == grpc.StatusCode.INVALID_ARGUMENT
    _, violations = _details(invalid)
    assert violations == {
        "queue_policies.analytics.max_attempts": "must be from 1 to 100; got 0",
        "queue_policies.analytics.timeout": "must be from 10 ms to 86400000 ms; got 1",
        "bigquery.max_wait_ms": "must be from 100 ms to 300000 ms; got 10000000",
        "queue_paused.mail": violations["queue_paused.mail"],
    }
    assert violations["queue_paused.mail"].startswith("no such setting")
    assert await redis_client.get(f"{apis.admin_settings.jobs_key_prefix}:settings") is None, "nothing stored"

    no_mask = await _error(
        apis.settings.UpdateSettings(settings_pb2.UpdateSettingsRequest(settings=settings))
    )
    assert no_mask.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "update_mask" in str(no_mask.details())


async def test_history_keeps_who_when_and_the_diff_newest_first_paged_and_bounded(apis: Apis) -> None:
    servicer = SettingsServicer(_manager_of(apis), require_api_keys=False)
    token = bind_principal(Principal(PrincipalKind.ADMIN, "alice"))
    try:
        started_ms = int(time.time() * 1000)
        for attempts in range(2, 14):  # 12 changes, 10 kept
            await servicer.UpdateSettings(
                _update(None, _with_attempts("analytics", attempts), "queue_policies.analytics.max_attempts"),
                None,  # the servicer does not use its context
            )
    finally:
        reset_principal(token)

    first = await apis.settings.ListSettingsHistory(settings_pb2.ListSettingsHistoryRequest(page_size=4))
    assert [revision.version for revision in first.revisions] == [12, 11, 10, 9]
    newest = first.revisions[0]
    assert newest.principal == "admin:alice"
    assert newest.change_time.ToMilliseconds() >= started_ms
    assert [(c.path, json.loads(c.old_value), json.loads(c.new_value)) for c in newest.changes] == [
        ("queue_policies.analytics.max_attempts", 12, 13)
    ]
    pages = [first]
    while pages[-1].next_page_token:
        pages.append(
            await apis.settings.ListSettingsHistory(
                settings_pb2.ListSettingsHistoryRequest(page_size=4, page_token=pages[-1].next_page_token)
            )
        )
    versions = [revision.version for page in pages for revision in page.revisions]
    assert versions == list(range(12, 2, -1)), "the newest 10 changes, each once"

    bad_token = await _error(
        apis.settings.ListSettingsHistory(settings_pb2.ListSettingsHistoryRequest(page_token="x"))
    )
    assert bad_token.code() == grpc.StatusCode.INVALID_ARGUMENT


def _manager_of(apis: Apis) -> SettingsManager:
    """A settings manager like the admin server's, for calling its servicer with a principal bound."""
    channel = grpc.aio.insecure_channel(apis.admin_settings.peers.jobs_address)
    apis.context.exit_stack.push_async_callback(channel.close)
    store = SettingsStore(
        apis.context.redis,
        prefix=apis.admin_settings.jobs_key_prefix,
        history_max_entries=apis.admin_settings.settings_history_max_entries,
    )
    return SettingsManager(store, JobsQueueControl(channel))


async def test_paused_is_the_queues_own_flag(apis: Apis) -> None:
    settings = settings_pb2.Settings()
    settings.queue_paused["analytics"] = True
    changed = await apis.settings.UpdateSettings(_update(0, settings, "queue_paused.analytics"))
    assert changed.queue_paused["analytics"] and changed.version == 1
    queues = {q.name: q for q in (await apis.jobs.ListQueues(jobs_pb2.ListQueuesRequest())).queues}
    assert queues["analytics"].paused, "the jobs service sees the queue paused"

    await apis.jobs.PauseQueue(jobs_pb2.PauseQueueRequest(name="bigquery"))
    seen = await apis.settings.GetSettings(settings_pb2.GetSettingsRequest())
    assert seen.queue_paused["bigquery"], "a queue paused through the jobs API shows in the settings"
    assert seen.version == 1


async def test_a_running_worker_picks_up_a_changed_retry_policy_within_2_s(
    apis: Apis, jobs: JobManager, store: JobStore, workers: Workers
) -> None:
    slow = settings_pb2.Settings()
    backoff = slow.queue_policies["analytics"].backoff
    backoff.type = jobs_pb2.BACKOFF_TYPE_FIXED
    backoff.base_delay.FromSeconds(60)
    backoff.max_delay.FromSeconds(60)
    paths = ("type", "base_delay", "max_delay", "jitter")
    await apis.settings.UpdateSettings(
        _update(0, slow, *(f"queue_policies.analytics.backoff.{p}" for p in paths))
    )
    # The periodic re-read is 30 s here: only the change notice can bring the new policy within 2 s.
    workers.start("a", MAINTENANCE_INTERVAL_SECONDS="30")
    warm_up = await jobs.submit(SubmitRequest(queue="analytics", task="diagnostics.echo", payload={}))
    await eventually(
        lambda: store.get(warm_up.id), lambda job: job.state is JobState.COMPLETED, timeout=20, what="warm-up"
    )

    fast = settings_pb2.Settings()
    fast.queue_policies["analytics"].backoff.base_delay.FromMilliseconds(100)
    await apis.settings.UpdateSettings(_update(1, fast, "queue_policies.analytics.backoff.base_delay"))
    answered_ms = int(time.time() * 1000)

    # A failing job every 100 ms: the first whose retry waits 100 ms (not 60 s) used the new policy.
    submitted = []
    for _ in range(25):
        submitted.append(
            await jobs.submit(
                SubmitRequest(
                    queue="analytics", task="diagnostics.fail", payload={"retryable": True}, max_attempts=2
                )
            )
        )
        await asyncio.sleep(0.1)

    async def first_on_new_policy() -> int | None:
        for job in submitted:
            seen = await store.get(job.id)
            if seen.state is JobState.FAILED and len(seen.attempt_errors) == 2:
                return seen.attempt_errors[0].occurred_at_ms
        return None

    used_at_ms = await eventually(
        first_on_new_policy, lambda at: at is not None, timeout=10, what="a retry 100 ms apart"
    )
    assert used_at_ms is not None
    assert used_at_ms - answered_ms <= 2000, (
        f"the new retry policy was first used {used_at_ms - answered_ms} ms after"
    )


async def test_a_queue_paused_through_settings_starts_no_jobs_until_resumed(
    apis: Apis, jobs: JobManager, store: JobStore, workers: Workers
) -> None:
    workers.start("a")
    paused = settings_pb2.Settings()
    paused.queue_paused["analytics"] = True
    await apis.settings.UpdateSettings(_update(0, paused, "queue_paused.analytics"))

    held = await jobs.submit(SubmitRequest(queue="analytics", task="diagnostics.echo", payload={}))
    other = await jobs.submit(SubmitRequest(queue="bigquery", task="diagnostics.echo", payload={}))
    await eventually(
        lambda: store.get(other.id),
        lambda job: job.state is JobState.COMPLETED,
        timeout=20,
        what="bigquery job",
    )
    assert (await store.get(held.id)).state is JobState.WAITING, (
        "the worker runs jobs, but none of the paused queue"
    )

    resumed = await apis.settings.UpdateSettings(
        _update(1, settings_pb2.Settings(), "queue_paused.analytics")
    )
    assert not resumed.queue_paused["analytics"]
    await eventually(
        lambda: store.get(held.id),
        lambda job: job.state is JobState.COMPLETED,
        timeout=20,
        what="resumed job",
    )
    history = await apis.settings.ListSettingsHistory(settings_pb2.ListSettingsHistoryRequest())
    assert [(c.path, c.new_value) for r in history.revisions for c in r.changes] == [
        ("queue_paused.analytics", "false"),
        ("queue_paused.analytics", "true"),
    ]


async def test_the_diagnostics_switch_reaches_the_running_jobs_service_within_2_s(apis: Apis) -> None:
    submit = jobs_pb2.SubmitJobRequest(queue="analytics", task="diagnostics.echo")
    await apis.jobs.SubmitJob(submit)
    off = await apis.settings.UpdateSettings(_update(0, settings_pb2.Settings(), "diagnostics_enabled"))
    assert not off.diagnostics_enabled

    async def refused() -> bool:
        try:
            await apis.jobs.SubmitJob(submit)
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
            return True
        return False

    await eventually(refused, bool, timeout=2, what="new diagnostics jobs refused")
    on = settings_pb2.Settings(diagnostics_enabled=True)
    await apis.settings.UpdateSettings(_update(1, on, "diagnostics_enabled"))
    await eventually(refused, lambda no: not no, timeout=2, what="diagnostics jobs accepted again")


async def test_a_redis_that_does_not_answer_is_unavailable_not_internal() -> None:
    client = create_redis(RedisSettings(port=free_port(), timeout_seconds=0.2, retries=0))
    store = SettingsStore(client, prefix="nowhere")
    try:
        with pytest.raises(UnavailableError, match="did not answer"):
            await store.read()
        with pytest.raises(UnavailableError):
            await store.history()
    finally:
        await client.aclose()
