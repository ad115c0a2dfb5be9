"""Identity from client certificates (mutual TLS, real gRPC on loopback): the Profiler tells an
Executor from a Selector by certificate name, and a Selector with --client-mtls takes the client's
certificate name as its client id."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from fixtures_suite import LoopThread
from pki_support import _signed, make_pki
from security_support import stamp
from modipick.core import ModelProfile
from modipick.stores import InMemoryProfileStore
from modipick.v1 import common_pb2, profiler_pb2, profiler_pb2_grpc, selector_pb2, selector_pb2_grpc

Code = grpc.StatusCode


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    pki = make_pki(tmp_path_factory.mktemp("pki"))
    directory = Path(pki.ca).parent
    for name in ("executor", "selector", "phone"):
        _signed(directory, "ca", name, f"/CN={name}.test", "extendedKeyUsage=clientAuth\n")
    return pki


def _channel(pki, target: str, cert: str | None) -> grpc.Channel:
    directory = Path(pki.ca).parent
    read = lambda p: Path(p).read_bytes()  # noqa: E731
    if cert is None:
        credentials = grpc.ssl_channel_credentials(read(pki.ca), read(pki.client_key), read(pki.client_cert))
    else:
        credentials = grpc.ssl_channel_credentials(read(pki.ca), read(directory / f"{cert}.key"),
                                                   read(directory / f"{cert}.crt"))
    return grpc.secure_channel(target, credentials)


def _code(call) -> Code:
    try:
        call()
        return Code.OK
    except grpc.RpcError as exc:
        return exc.code()


def test_the_profiler_tells_executors_from_selectors_by_certificate(pki):
    from modipick.profiler.app import ProfilerSettings, start_profiler
    from modipick.runtime.identity import ServiceCredentials

    store = InMemoryProfileStore()
    store.register(ModelProfile(name="m", declared_accuracy=90.0, mean_ms=2.0, samples=10))
    loop = LoopThread()
    app = loop.run(start_profiler(ProfilerSettings(
        executor_target="127.0.0.1:9", discover=False, server_tls=pki.server_tls(),
        service_credentials=ServiceCredentials(names={"executor": ("executor.test",),
                                                      "selector": ("selector.test",)})), store=store))
    observation = profiler_pb2.RecordObservationsRequest(observations=[profiler_pb2.Observation(
        model=common_pb2.ModelRef(name="m", version=1), execution_ms=500.0)])
    outcome = profiler_pb2.RecordOutcomeRequest(request_id="r", model=common_pb2.ModelRef(name="m", version=1),
                                                e2e_ms=10.0, sla_ms=100.0)
    try:
        codes = {}
        for cert in ("executor", "selector", "phone", None):
            with _channel(pki, app.target, cert) as channel:
                stub = profiler_pb2_grpc.ProfilerServiceStub(channel)
                codes[cert] = (_code(lambda: stub.RecordObservations(iter([observation]), timeout=5)),
                               _code(lambda: stub.RecordOutcome(outcome, timeout=5)))
    finally:
        loop.run(app.stop(0))
        loop.close()
    assert codes["executor"] == (Code.OK, Code.PERMISSION_DENIED)
    assert codes["selector"] == (Code.PERMISSION_DENIED, Code.OK)
    assert codes["phone"] == codes[None] == (Code.PERMISSION_DENIED, Code.PERMISSION_DENIED)
    assert store.load_all()[0].samples == 11  # only the Executor's observation landed


def test_a_selector_takes_the_client_id_from_the_client_certificate(pki):
    import time

    from modipick.runtime.identity_interceptors import ClientAuthSettings
    from modipick.selector.app import SelectorSettings, start_selector

    store = InMemoryProfileStore()
    store.register(ModelProfile(name="m", declared_accuracy=90.0, mean_ms=2.0, samples=10))
    loop = LoopThread()
    app = loop.run(start_selector(SelectorSettings(
        executor_target="127.0.0.1:9", profiler_target="", refresh_ms=60_000.0, server_tls=pki.server_tls(),
        client_auth=ClientAuthSettings(mode="required", mtls=True)), store=store))

    def select(channel, client_id: str = "") -> Code:
        request = selector_pb2.SelectRequest(request_id="s-1", sla_ms=1000.0, client_id=client_id,
                                             client_send_time=stamp(time.time_ns()))
        return _code(lambda: selector_pb2_grpc.SelectorServiceStub(channel).Select(request, timeout=5))

    try:
        with _channel(pki, app.target, "phone") as channel:
            assert select(channel) == Code.OK
            assert select(channel, "phone.test") == Code.OK
            assert select(channel, "someone-else") == Code.PERMISSION_DENIED
        book = app.service.budgeter.returns
        # both calls ran as the one client phone.test (the empty client_id was filled in)
        assert book.known_clients() == 1
        book.client_model("phone.test")
        assert book.known_clients() == 1  # the one known is phone.test
    finally:
        loop.run(app.stop(0))
        loop.close()


def test_unauthenticated_callers_are_one_anonymous_client_that_names_no_one():
    """--client-auth anonymous (plaintext, real gRPC): no credentials is the client anonymous/*; naming
    a client without proving it is PERMISSION_DENIED; a bad token is never downgraded to anonymous."""
    import time

    from modipick.runtime.identity import ANONYMOUS_CLIENT_ID, JwtSettings
    from modipick.runtime.identity_interceptors import ClientAuthSettings
    from modipick.selector.app import SelectorSettings, start_selector

    store = InMemoryProfileStore()
    store.register(ModelProfile(name="m", declared_accuracy=90.0, mean_ms=2.0, samples=10))
    loop = LoopThread()
    app = loop.run(start_selector(SelectorSettings(
        executor_target="127.0.0.1:9", profiler_target="", refresh_ms=60_000.0,
        client_auth=ClientAuthSettings(mode="anonymous", jwt=JwtSettings(hs256_secrets=("s" * 32,)))), store=store))

    def select(client_id: str = "", metadata=()) -> Code:
        request = selector_pb2.SelectRequest(request_id="s-1", sla_ms=1000.0, client_id=client_id,
                                             client_send_time=stamp(time.time_ns()))
        with grpc.insecure_channel(app.target) as channel:
            return _code(lambda: selector_pb2_grpc.SelectorServiceStub(channel).Select(request, timeout=5,
                                                                                      metadata=metadata))

    try:
        assert select() == Code.OK
        assert select(ANONYMOUS_CLIENT_ID) == Code.OK
        assert select("lte/alice") == Code.PERMISSION_DENIED
        assert select(metadata=(("authorization", "Bearer not-a-jwt"),)) == Code.UNAUTHENTICATED
        book = app.service.budgeter.returns
        assert book.known_clients() == 1
        book.client_model(ANONYMOUS_CLIENT_ID)
        assert book.known_clients() == 1  # the one client known is the anonymous one
    finally:
        loop.run(app.stop(0))
        loop.close()
