"""The oip backend against a real Open Inference Protocol server: MLServer, in its own virtual
environment (tests/executor/executor_mlserver.py), serving a scikit-learn digits model through a
custom MLServer runtime. The Executor learns the model's input and output from ModelMetadata,
its readiness from ModelReady, and runs it with ModelInfer."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from executor_support import RecordingSink, execute_request, start_app, tensor_input
from executor_mlserver import MODEL, MLServer, MLServerUnavailable, ensure_venv

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


def test_a_triton_client_reaches_mlserver_through_modipick(loop_thread, mlserver, held_out, tmp_path):
    """Both ends at once: Triton's client -> the Selector's OIP front door -> the Executor's oip
    backend -> MLServer, the Profiler learning the model's latency on the way (memory store). The
    pool's manifest names the model and declares its accuracy (with none, 0 %, `risk_aware` never
    finds the model worth running)."""
    import time

    import tritonclient.grpc as triton

    from modipick.executor.app import ExecutorSettings
    from modipick.profiler.app import ProfilerSettings, start_profiler
    from modipick.profiler.lifecycle import LifecycleSettings
    from modipick.selector.app import SelectorSettings, start_selector
    from modipick.stores import make_store
    from modipick.zoo.manifest import Manifest, ModelEntry, write_manifest

    write_manifest(tmp_path, Manifest("mlserver-digits", (ModelEntry(
        MODEL, 1, declared_accuracy=96.0, input_shape=(-1, 8, 8, 1), labels=tuple("0123456789"),
        preprocessing="8x8 digits, pixels 0..16", image_value_max=16.0),)))
    executor = start_app(loop_thread, ExecutorSettings(backend="oip", oip_target=mlserver.target,
                                                       model_base=str(tmp_path), grace_s=0.5))
    store = make_store("memory")
    profiler = loop_thread.run(start_profiler(ProfilerSettings(
        executor_target=executor.target,
        lifecycle=LifecycleSettings(warmup_runs=2, probe_runs=5, discovery_interval_s=0.2)), store=store))
    selector = loop_thread.run(start_selector(SelectorSettings(
        executor_target=executor.target, profiler_target=profiler.target, refresh_ms=100.0,
        oip_models=("digits",)), store=store))
    try:
        images, labels = held_out
        with triton.InferenceServerClient(selector.target) as client:
            deadline = time.monotonic() + 60
            while not client.is_model_ready("digits"):  # the Profiler made the model eligible, the Selector saw it
                assert time.monotonic() < deadline, f"{MODEL} not eligible: {store.load_all()}"
                time.sleep(0.1)
            tensor = triton.InferInput("image", [1, 8, 8, 1], "FP32")
            right = 0
            for image, label in zip(images[:10], labels[:10]):
                tensor.set_data_from_numpy(np.asarray(image, np.float32)[None])
                result = client.infer("digits", [tensor], client_timeout=2.0)
                params = result.get_response().parameters
                assert (params["modipick_model"].string_param, params["modipick_model_version"].int64_param,
                        params["modipick_disposition"].string_param) == (MODEL, 1, "SERVED")
                right += int(result.as_numpy("label")[0]) == int(label)
        assert right >= 8, f"{right}/10"
    finally:
        loop_thread.run(selector.stop(0))
        loop_thread.run(profiler.stop(0))
        loop_thread.run(executor.stop(0))
        store.close()
