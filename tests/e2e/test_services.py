"""Every service process serves health and reflection for what it implements."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from devstack.stack import Stack

EXPECTED_SERVICES = {
    "jobs": ["switchboard.jobs.v1.JobsService"],
    "ratelimit": ["switchboard.ratelimit.v1.RateLimitService"],
    "bigquery": ["switchboard.bigquery.v1.BigQueryService", "switchboard.bigquery.v1.QueryService"],
    "analytics": ["switchboard.analytics.v1.AnalyticsService"],
    "admin": ["switchboard.admin.v1.SettingsService", "switchboard.admin.v1.ConnectionService"],
}


@pytest.mark.parametrize("name", sorted(EXPECTED_SERVICES))
def test_reflection_lists_the_services_and_health_answers_for_each(stack: Stack, name: str) -> None:
    with grpc.insecure_channel(stack.services[name].address) as channel:
        listed = set(ProtoReflectionDescriptorDatabase(channel).get_services())
        assert set(EXPECTED_SERVICES[name]) | {
            "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"
        } <= listed  # fmt: skip
        health = health_pb2_grpc.HealthStub(channel)
        for service in ["", *EXPECTED_SERVICES[name]]:
            response = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert response.status == health_pb2.HealthCheckResponse.SERVING, (name, service)
