"""Every service answers grpc.health.v1 and lists itself through reflection."""

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc


@pytest.mark.parametrize("which, service", [
    ("selector_target", "modipick.v1.SelectorService"), ("profiler_target", "modipick.v1.ProfilerService"),
    ("executor_target", "modipick.v1.ExecutorService")])
def test_health_and_reflection(live_suite, which, service):
    with grpc.insecure_channel(getattr(live_suite, which)) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for name in ("", service):
            reply = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING, name
        replies = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
        names = {s.name for r in replies for s in r.list_services_response.service}
        assert {service, "grpc.health.v1.Health"} <= names
