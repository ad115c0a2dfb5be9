"""The Selector's failures carry google.rpc.Status details, and the SDK acts on them: a stable
ErrorInfo reason (never the message text), RetryInfo on RESOURCE_EXHAUSTED, and no client retry of
an UNAVAILABLE the Selector answered itself. A real in-process Selector; its Executor is a double
on a real loopback server that refuses as scripted (a real one cannot be made to shed on cue)."""

from __future__ import annotations

from concurrent import futures

import grpc
import pytest

from fixtures_suite import LoopThread
from modipick.client import InvalidRequest, ModiPickClient, Overloaded, RetryPolicy, Unavailable
from modipick.client.core import build_outcome
from modipick.core import ModelProfile
from modipick.stores import InMemoryProfileStore
from modipick.v1 import common_pb2, executor_pb2, executor_pb2_grpc, selector_pb2_grpc
from client_support import PNG

MEAN_MS = 20.0


class RefusingExecutor(executor_pb2_grpc.ExecutorServiceServicer):
    """Answers by what the image bytes ask for: b"full" sheds, b"bad" is undecodable, else a label."""

    def Execute(self, request, context):
        image = request.input.encoded_image
        if b"full" in image:
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "queue full (2 running, 8 waiting)")
        if b"bad" in image:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "input.encoded_image: not a decodable image")
        return executor_pb2.ExecuteResponse(request_id=request.request_id, model=request.model,
                                            prediction=common_pb2.Prediction(label=1, score=1.0, scores=[0.0, 1.0]))

    def ListModels(self, request, context):
        return executor_pb2.ListModelsResponse(models=[executor_pb2.ModelStatus(
            model=common_pb2.ModelRef(name="cnn-small", version=1), state=common_pb2.MODEL_STATE_ELIGIBLE,
            max_concurrency=2)])


@pytest.fixture(scope="module")
def loop():
    thread = LoopThread()
    yield thread
    thread.close()


@pytest.fixture(scope="module")
def executor():
    server = grpc.server(futures.ThreadPoolExecutor(4))
    executor_pb2_grpc.add_ExecutorServiceServicer_to_server(RefusingExecutor(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(0).wait(5)


def _selector(loop, executor_target, store):
    from modipick.selector.app import SelectorSettings, start_selector
    from modipick.selector.returnlegs import ReturnLegSettings

    return loop.run(start_selector(SelectorSettings(executor_target=executor_target, policy="dynamic_greedy",
                                                    return_legs=ReturnLegSettings(mode="mirror")), store=store))


@pytest.fixture(scope="module")
def selector(loop, executor):
    store = InMemoryProfileStore()
    store.register(ModelProfile(name="cnn-small", declared_accuracy=90.0, mean_ms=MEAN_MS, samples=20))
    app = _selector(loop, executor, store)
    yield app
    loop.run(app.stop(0.5))


def test_an_overloaded_executor_is_overloaded_with_a_retry_delay(selector):
    with ModiPickClient(selector.server.target) as client, pytest.raises(Overloaded) as err:
        client.infer(PNG + b"full", 2000)
    error = err.value
    assert error.code == grpc.StatusCode.RESOURCE_EXHAUSTED and error.reason == "OVERLOADED"
    assert error.status.domain == "modipick" and error.error_metadata["model"].startswith("cnn-small")
    assert error.retry_delay_s == pytest.approx(MEAN_MS / 1000.0)  # one execution of the chosen model
    assert "queue full" in error.details and isinstance(error.__cause__, grpc.RpcError)


def test_input_the_model_cannot_use_is_an_invalid_input(selector):
    with ModiPickClient(selector.server.target) as client, pytest.raises(InvalidRequest) as err:
        client.infer(PNG + b"bad", 2000)
    assert err.value.reason == "INVALID_INPUT" and err.value.retry_delay_s is None


def test_a_bad_field_is_named_in_the_error_info(selector):
    with ModiPickClient(selector.server.target) as client:
        with pytest.raises(InvalidRequest) as err:
            client.infer(PNG, 2000, policy="fastest-please")
        assert err.value.reason == "INVALID_REQUEST" and err.value.error_metadata == {"field": "policy"}
        served = client.infer(PNG, 2000)
        bad = build_outcome(served, 1, "")
        bad.e2e_ms = -1.0
        with grpc.insecure_channel(selector.server.target) as channel, pytest.raises(grpc.RpcError) as raw:
            selector_pb2_grpc.SelectorServiceStub(channel).ReportOutcome(bad, timeout=5)
    from modipick.client.status import status_details

    details = status_details(raw.value.trailing_metadata())
    assert details.reason == "INVALID_REQUEST" and details.metadata == {"field": "e2e_ms"}


def test_no_eligible_model_is_answered_once_however_many_retries_the_client_allows(loop, executor):
    app = _selector(loop, executor, InMemoryProfileStore())
    try:
        with ModiPickClient(app.server.target, retry=RetryPolicy(max_attempts=5)) as client, \
                pytest.raises(Unavailable) as err:
            client.infer(PNG, 2000)
    finally:
        loop.run(app.stop(0.5))
    assert err.value.reason == "NO_ELIGIBLE_MODEL"
    errors = sum(n for (_, disposition), n in app.service.metrics.requests.items() if disposition == "error")
    assert errors == 1  # the Selector processed it once: the client did not retry


def test_an_undecodable_message_is_an_invalid_request(selector):
    with grpc.insecure_channel(selector.server.target) as channel:
        infer = channel.unary_unary("/modipick.v1.SelectorService/Infer")  # raw bytes, no serializer
        with pytest.raises(grpc.RpcError) as raw:
            infer(b"\xff\xff\xff", timeout=5)
    from modipick.client.status import status_details

    assert raw.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "undecodable" in raw.value.details()
    assert status_details(raw.value.trailing_metadata()).reason == "INVALID_REQUEST"
