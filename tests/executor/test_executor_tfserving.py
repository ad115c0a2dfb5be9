"""The tfserving backend against the protocol double: the same answers as the embedded backend,
versions and labels as TF Serving resolves them, AVAILABLE-only eligibility, deadlines passed on."""

from __future__ import annotations

import time

import grpc
import numpy as np
import pytest
from executor_support import execute_request, png_input, saved_model_predict, start_app, tensor_input

from modipick.executor.app import ExecutorSettings
from modipick.v1 import common_pb2, executor_pb2

pytestmark = pytest.mark.tf


def test_the_tfserving_backend_gives_the_same_predictions_as_the_embedded_one(
        embedded_executor, tfserving_executor, stub_for, held_out):
    embedded, served = stub_for(embedded_executor), stub_for(tfserving_executor)
    names = [m.model.name for m in embedded.ListModels(executor_pb2.ListModelsRequest(), timeout=10).models]
    assert len(names) == 5
    images = held_out[0][:40]
    for name in names:
        for image in images:
            a = embedded.Execute(execute_request(name, tensor_input(image)), timeout=10)
            b = served.Execute(execute_request(name, tensor_input(image)), timeout=10)
            assert (b.model.name, b.model.version) == (a.model.name, a.model.version)
            assert b.prediction.label == a.prediction.label
            np.testing.assert_allclose(b.prediction.scores, a.prediction.scores, rtol=1e-5, atol=1e-7)
        # encoded images take the same path through both
        a = embedded.Execute(execute_request(name, png_input(images[0])), timeout=10)
        b = served.Execute(execute_request(name, png_input(images[0])), timeout=10)
        np.testing.assert_allclose(b.prediction.scores, a.prediction.scores, rtol=1e-5, atol=1e-7)


def test_list_models_match_between_backends(embedded_executor, tfserving_executor, stub_for):
    def listing(app):
        reply = stub_for(app).ListModels(executor_pb2.ListModelsRequest(), timeout=10)
        return sorted((m.model.name, m.model.version, m.state, tuple(m.input_shape), m.input_name,
                       round(m.declared_accuracy, 3)) for m in reply.models)

    assert listing(tfserving_executor) == listing(embedded_executor)


def test_the_double_saw_the_real_protocol(tfserving_executor, tfserving_double, stub_for, held_out):
    tfserving_double.calls.clear()
    stub_for(tfserving_executor).Execute(execute_request("cnn-small", tensor_input(held_out[0][0])), timeout=2.0)
    predict = [c for c in tfserving_double.calls if c.method == "Predict"]
    assert len(predict) == 1
    spec = predict[0].model_spec
    assert (spec.name, spec.version.value, spec.signature_name) == ("cnn-small", 1, "serving_default")
    # the remaining budget travelled as the gRPC deadline (not the 30 s default); gRPC rounds
    # timeouts up a little on the wire, hence the margin
    assert 1.0 < predict[0].time_remaining_s <= 2.05


def test_a_version_is_eligible_only_when_available(tfserving_executor, tfserving_double, stub_for, held_out):
    stub = stub_for(tfserving_executor)
    try:
        tfserving_double.set_state("cnn-medium", 1, "LOADING")
        states = {m.model.name: m.state for m in stub.ListModels(executor_pb2.ListModelsRequest(), timeout=10).models}
        assert states["cnn-medium"] == common_pb2.MODEL_STATE_LOADING
        assert states["cnn-small"] == common_pb2.MODEL_STATE_ELIGIBLE
        with pytest.raises(grpc.RpcError) as err:
            stub.Execute(execute_request("cnn-medium", tensor_input(held_out[0][0])), timeout=5)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "LOADING" in err.value.details()
    finally:
        tfserving_double.reset()
    states = {m.model.name: m.state for m in stub.ListModels(executor_pb2.ListModelsRequest(), timeout=10).models}
    assert states["cnn-medium"] == common_pb2.MODEL_STATE_ELIGIBLE
    assert stub.Execute(execute_request("cnn-medium", tensor_input(held_out[0][0])), timeout=5).model.version == 1


def test_the_deadline_is_passed_to_tf_serving(tfserving_executor, tfserving_double, stub_for, held_out):
    tfserving_double.calls.clear()
    tfserving_double.set_delay("cnn-large", 2.0)
    try:
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as err:
            stub_for(tfserving_executor).Execute(execute_request("cnn-large", tensor_input(held_out[0][0])),
                                                 timeout=0.4)
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - started < 2.0  # ended before TF Serving's delayed answer would have come
        predict = [c for c in tfserving_double.calls if c.method == "Predict"]
        assert predict and predict[0].time_remaining_s <= 0.45
    finally:
        tfserving_double.reset()


def test_bad_input_and_unknown_models_over_tfserving(tfserving_executor, stub_for, held_out):
    stub = stub_for(tfserving_executor)
    with pytest.raises(grpc.RpcError) as err:
        stub.Execute(execute_request("cnn-small", tensor_input(np.zeros((9, 9, 1), np.float32))), timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as err:
        stub.Execute(execute_request("cnn-small", tensor_input(held_out[0][0]), version=3), timeout=5)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as err:
        stub.Execute(execute_request("nope", tensor_input(held_out[0][0])), timeout=5)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    request = execute_request("cnn-small", tensor_input(held_out[0][0]))
    request.signature_name = "nope"
    with pytest.raises(grpc.RpcError) as err:
        stub.Execute(request, timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.fixture(scope="module")
def versioned_executors(loop_thread, versioned_pool):
    from tfserving_double.server import TFServingDouble

    double = TFServingDouble(versioned_pool).start()
    apps = {
        "embedded": start_app(loop_thread, ExecutorSettings(model_base=str(versioned_pool), grace_s=0.2)),
        "tfserving": start_app(loop_thread, ExecutorSettings(backend="tfserving", tfserving_target=double.target,
                                                             model_base=str(versioned_pool), grace_s=0.2)),
    }
    yield apps
    for app in apps.values():
        loop_thread.run(app.stop(0))
    double.stop()


@pytest.mark.parametrize("backend", ["embedded", "tfserving"])
def test_versions_and_labels(versioned_executors, versioned_pool, stub_for, held_out, backend):
    stub = stub_for(versioned_executors[backend])
    listed = sorted((m.model.name, m.model.version) for m in
                    stub.ListModels(executor_pb2.ListModelsRequest(), timeout=10).models)
    assert listed == [("digit", 1), ("digit", 2)]
    images = held_out[0][:50]
    expected = {v: np.argmax(saved_model_predict(versioned_pool / "digit" / str(v), images), axis=1) for v in (1, 2)}
    assert (expected[1] != expected[2]).any()  # the two versions really are different models
    cases = [({"version": 1}, 1), ({"version": 2}, 2), ({}, 2), ({"label": "stable"}, 1), ({"label": "canary"}, 2)]
    for kwargs, version in cases:
        labels = [stub.Execute(execute_request("digit", tensor_input(image), **kwargs), timeout=10) for image in images]
        assert {r.model.version for r in labels} == {version}, kwargs
        assert [r.prediction.label for r in labels] == list(expected[version]), kwargs
    for kwargs in ({"label": "beta"}, {"version": 3}):
        with pytest.raises(grpc.RpcError) as err:
            stub.Execute(execute_request("digit", tensor_input(images[0]), **kwargs), timeout=5)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND, kwargs


def test_tf_serving_unreachable(loop_thread, digits_pool, stub_for, held_out):
    from fixtures_redis import free_port

    app = start_app(loop_thread, ExecutorSettings(backend="tfserving", tfserving_target=f"127.0.0.1:{free_port()}",
                                                  model_base=str(digits_pool), grace_s=0.2))
    try:
        stub = stub_for(app)
        assert list(stub.ListModels(executor_pb2.ListModelsRequest(), timeout=20).models) == []
        with pytest.raises(grpc.RpcError) as err:
            stub.Execute(execute_request("cnn-small", tensor_input(held_out[0][0])), timeout=20)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert app.settings.tfserving_target in err.value.details()
    finally:
        loop_thread.run(app.stop(0))
