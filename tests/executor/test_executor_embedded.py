"""The Executor with the embedded backend, over real gRPC, on the real digits pool."""

from __future__ import annotations

import json
import time

import grpc
import numpy as np
import pytest
from executor_support import execute_request, png_input, saved_model_predict, tensor_input

from modipick.v1 import common_pb2, executor_pb2

pytestmark = pytest.mark.tf

DIGITS_MODELS = {"mlp-tiny", "mlp-small", "cnn-small", "cnn-medium", "cnn-large"}


def test_list_models_reports_the_pool(embedded_executor, stub_for, digits_pool):
    manifest = {m["name"]: m for m in json.loads((digits_pool / "manifest.json").read_text())["models"]}
    reply = stub_for(embedded_executor).ListModels(executor_pb2.ListModelsRequest(), timeout=10)
    by_name = {s.model.name: s for s in reply.models}
    assert set(by_name) == DIGITS_MODELS
    for name, status in by_name.items():
        assert status.model.version == 1
        assert status.state == common_pb2.MODEL_STATE_ELIGIBLE
        assert list(status.input_shape) == [-1, 8, 8, 1]
        assert status.input_name == "image"
        assert status.declared_accuracy == pytest.approx(manifest[name]["declared_accuracy"])
        assert status.queue_depth == 0


def test_predictions_are_the_models_on_real_digits(embedded_executor, stub_for, held_out, digits_pool):
    images, labels = held_out[0][:60], held_out[1][:60]
    stub = stub_for(embedded_executor)
    for name in ("mlp-tiny", "cnn-large"):
        expected = saved_model_predict(digits_pool / name / "1", images)
        got = []
        for i, image in enumerate(images):
            reply = stub.Execute(execute_request(name, tensor_input(image[None]), request_id=f"r{i}"), timeout=10)
            assert reply.request_id == f"r{i}"
            assert reply.model.name == name and reply.model.version == 1
            assert reply.prediction.label_name == str(reply.prediction.label)
            assert len(reply.prediction.scores) == 10
            assert reply.prediction.score == pytest.approx(max(reply.prediction.scores))
            assert reply.queue_ms >= 0 and reply.execution_ms > 0
            np.testing.assert_allclose(reply.prediction.scores, expected[i], rtol=1e-4, atol=1e-6)
            got.append(reply.prediction.label)
        accuracy = float(np.mean(np.array(got) == labels))
        assert accuracy > 0.75, f"{name}: {accuracy:.2f} on held-out digits"
    # a real accuracy spread: the big CNN beats the tiny MLP on the same digits
    tiny = np.argmax(saved_model_predict(digits_pool / "mlp-tiny" / "1", held_out[0]), axis=1)
    large = np.argmax(saved_model_predict(digits_pool / "cnn-large" / "1", held_out[0]), axis=1)
    assert np.mean(large == held_out[1]) > np.mean(tiny == held_out[1])


def test_png_input_is_decoded_and_scaled_like_the_tensor(embedded_executor, stub_for, held_out):
    stub = stub_for(embedded_executor)
    images = held_out[0][:30]
    agree = 0
    for image in images:
        by_tensor = stub.Execute(execute_request("cnn-medium", tensor_input(image)), timeout=10)
        by_png = stub.Execute(execute_request("cnn-medium", png_input(image)), timeout=10)
        agree += by_png.prediction.label == by_tensor.prediction.label
        np.testing.assert_allclose(by_png.prediction.scores, by_tensor.prediction.scores, atol=0.05)
    assert agree >= 29


def test_a_larger_png_is_resized_to_the_model_input(embedded_executor, stub_for, held_out):
    import tensorflow as tf

    image, label = held_out[0][0], held_out[1][0]
    big = tf.image.resize(image * 255.0 / 16.0, (32, 32), method="nearest").numpy().astype(np.uint8)
    reply = stub_for(embedded_executor).Execute(
        execute_request("cnn-large", common_pb2.Input(encoded_image=tf.io.encode_png(big).numpy())), timeout=10)
    assert reply.prediction.label == label


@pytest.mark.parametrize("make_input, fragment", [
    (lambda: tensor_input(np.zeros((28, 28), np.float32)), "expects one image of shape [8, 8, 1]"),
    (lambda: tensor_input(np.zeros((2, 8, 8, 1), np.float32)), "expects one image"),
    (lambda: common_pb2.Input(tensor=common_pb2.Tensor(dtype="int64", shape=[8, 8, 1], content=bytes(512))),
     "dtype 'int64' is not supported"),
    (lambda: common_pb2.Input(tensor=common_pb2.Tensor(dtype="float32", shape=[8, 8, 1], content=bytes(10))),
     "needs 256"),
    (lambda: tensor_input(np.full((8, 8, 1), np.nan, np.float32)), "NaN"),
    (lambda: common_pb2.Input(encoded_image=b"\x89PNG\r\n\x1a\n not really a png"), "undecodable image"),
    (lambda: common_pb2.Input(encoded_image=b"hello"), "undecodable image"),
    (lambda: common_pb2.Input(), "input is empty"),
])
def test_bad_input_is_invalid_argument(embedded_executor, stub_for, make_input, fragment):
    with pytest.raises(grpc.RpcError) as err:
        stub_for(embedded_executor).Execute(execute_request("cnn-small", make_input()), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert fragment in err.value.details()


def test_uint8_tensors_and_hw_images_are_accepted(embedded_executor, stub_for, held_out):
    image = held_out[0][3]
    stub = stub_for(embedded_executor)
    as_float = stub.Execute(execute_request("cnn-small", tensor_input(image)), timeout=10)
    raw = image.astype(np.uint8)[:, :, 0]
    as_uint8 = stub.Execute(execute_request("cnn-small", common_pb2.Input(tensor=common_pb2.Tensor(
        dtype="uint8", shape=[8, 8], content=raw.tobytes()))), timeout=10)
    assert as_uint8.prediction.label == as_float.prediction.label


@pytest.mark.parametrize("ref, code, fragment", [
    (common_pb2.ModelRef(name="resnet-9000"), grpc.StatusCode.NOT_FOUND, "unknown model 'resnet-9000'"),
    (common_pb2.ModelRef(name="cnn-small", version=7), grpc.StatusCode.NOT_FOUND, "has no version 7"),
    (common_pb2.ModelRef(name="cnn-small", version_label="canary"), grpc.StatusCode.NOT_FOUND, "no version label"),
    (common_pb2.ModelRef(name="cnn-small", version=-1), grpc.StatusCode.INVALID_ARGUMENT, "must be >= 0"),
    (common_pb2.ModelRef(name=""), grpc.StatusCode.INVALID_ARGUMENT, "model.name is empty"),
])
def test_unknown_models_and_versions(embedded_executor, stub_for, held_out, ref, code, fragment):
    request = executor_pb2.ExecuteRequest(model=ref, input=tensor_input(held_out[0][0]))
    with pytest.raises(grpc.RpcError) as err:
        stub_for(embedded_executor).Execute(request, timeout=10)
    assert err.value.code() == code
    assert fragment in err.value.details()


def test_unknown_signature_is_invalid_argument(embedded_executor, stub_for, held_out):
    request = execute_request("cnn-small", tensor_input(held_out[0][0]))
    request.signature_name = "predict_everything"
    with pytest.raises(grpc.RpcError) as err:
        stub_for(embedded_executor).Execute(request, timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "predict_everything" in err.value.details()


def test_an_expired_deadline_is_deadline_exceeded(embedded_executor, stub_for, held_out):
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as err:
        # 10 us: past before any model can answer (at 0.5 ms a quiet machine's cnn-large once made it)
        stub_for(embedded_executor).Execute(execute_request("cnn-large", tensor_input(held_out[0][0])),
                                            timeout=0.00001)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 1.0
