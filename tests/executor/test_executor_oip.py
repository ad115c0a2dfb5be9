"""The oip backend against a real Open Inference Protocol server: MLServer, in its own virtual
environment (tests/executor/mlserver_support.py), serving a scikit-learn digits model through a
custom MLServer runtime. The Executor learns the model's input and output from ModelMetadata,
its readiness from ModelReady, and runs it with ModelInfer."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from executor_helpers import RecordingSink, execute_request, start_app, tensor_input
from mlserver_support import MODEL, MLServer, MLServerUnavailable, ensure_venv

from modipick.v1 import common_pb2, executor_pb2

# the first run builds MLServer's virtual environment (minutes); later runs find it cached
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


@pytest.fixture(scope="module")
def mlserver(tmp_path_factory):
    try:
        server = MLServer(ensure_venv(), tmp_path_factory.mktemp("mlserver")).wait_ready()
    except MLServerUnavailable as exc:
        pytest.fail(f"MLServer, the real OIP server these tests need, cannot run here: {exc}", pytrace=False)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def oip_executor(loop_thread, mlserver):
    from modipick.executor.app import ExecutorSettings

    sink = RecordingSink()
    app = start_app(loop_thread, ExecutorSettings(backend="oip", oip_target=mlserver.target,
                                                  oip_models=(MODEL, "not-served"), max_concurrency=2,
                                                  max_queue=8, grace_s=0.5), sink=sink)
    yield app, sink
    loop_thread.run(app.stop(0))


def test_models_are_listed_as_the_server_describes_them(oip_executor, stub_for):
    app, _ = oip_executor
    reply = stub_for(app).ListModels(executor_pb2.ListModelsRequest(), timeout=10)
    listed = {(m.model.name, m.model.version): m for m in reply.models}
    assert set(listed) == {(MODEL, 1)}  # "not-served" is unknown to MLServer: no versions
    model = listed[MODEL, 1]
    assert model.state == common_pb2.MODEL_STATE_ELIGIBLE  # the Executor says so of AVAILABLE versions
    assert (model.input_name, list(model.input_shape)) == ("image", [-1, 8, 8, 1])


def test_mlserver_predictions_come_back_through_the_executor(oip_executor, stub_for, held_out):
    app, sink = oip_executor
    stub = stub_for(app)
    images, labels = held_out
    right = 0
    for image, label in zip(images[:60], labels[:60]):
        reply = stub.Execute(execute_request(MODEL, tensor_input(image)), timeout=10)
        assert (reply.model.name, reply.model.version) == (MODEL, 1)
        scores = np.asarray(reply.prediction.scores)
        assert scores.shape == (10,) and abs(scores.sum() - 1.0) < 1e-4  # predict_proba's rows
        assert reply.prediction.label == int(np.argmax(scores))
        right += reply.prediction.label == int(label)
    # logistic regression on 8x8 digits is ~96 % right; a mangled tensor (byte order, shape, the
    # wrong output) scores near chance
    assert right >= 50, f"{right}/60"
    assert any(o.name == MODEL and not o.failed for o in sink.observations)


def test_a_model_the_server_does_not_know_is_not_found(oip_executor, stub_for, held_out):
    app, _ = oip_executor
    with pytest.raises(grpc.RpcError) as excinfo:
        stub_for(app).Execute(execute_request("not-served", tensor_input(held_out[0][0])), timeout=10)
    assert excinfo.value.code() == grpc.StatusCode.NOT_FOUND
    assert "not-served" in excinfo.value.details()


def test_input_is_checked_against_the_servers_metadata(oip_executor, stub_for):
    app, _ = oip_executor
    with pytest.raises(grpc.RpcError) as excinfo:
        stub_for(app).Execute(execute_request(MODEL, tensor_input(np.zeros((5, 5, 1), np.float32))), timeout=10)
    assert excinfo.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "[?, 8, 8, 1]" in excinfo.value.details() or "8, 8, 1" in excinfo.value.details()


def test_a_version_the_server_lacks_is_not_found(oip_executor, stub_for, held_out):
    app, _ = oip_executor
    with pytest.raises(grpc.RpcError) as excinfo:
        stub_for(app).Execute(execute_request(MODEL, tensor_input(held_out[0][0]), version=7), timeout=10)
    assert excinfo.value.code() == grpc.StatusCode.NOT_FOUND
