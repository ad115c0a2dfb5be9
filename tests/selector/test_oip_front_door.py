"""The Open Inference Protocol front door on the live suite, called by Triton's own client
(`tritonclient.grpc`): the gRPC deadline (`client_timeout`) is the SLA, the reply says which model
of the pool ran, and bad requests get the status an OIP server gives."""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

from modipick.selector.oip import DISPOSITION_KEY, MODEL_KEY

MODEL = "digits"


@pytest.fixture(scope="module")
def oip_selector(live_suite):
    """A Selector replica that also serves the OIP for the virtual model `digits` (and `mnist`)."""
    return live_suite.start_selector(oip_models=(MODEL, "mnist"))


@pytest.fixture()
def client(oip_selector):
    with triton.InferenceServerClient(url=oip_selector.target) as c:
        yield c


def _image_input(image: np.ndarray, name: str = "image") -> triton.InferInput:
    batch = np.asarray(image, dtype=np.float32)[None]
    tensor = triton.InferInput(name, list(batch.shape), "FP32")
    tensor.set_data_from_numpy(batch)
    return tensor


def _params(result: triton.InferResult) -> dict[str, object]:
    out = {}
    for key, value in result.get_response().parameters.items():
        out[key] = getattr(value, value.WhichOneof("parameter_choice"))
    return out


def _status(excinfo) -> str:
    return excinfo.value.status()


def test_triton_client_sees_a_live_ready_server_and_the_virtual_model(client, oip_selector, live_suite):
    import grpc

    from modipick.oip.v2 import open_inference_grpc_pb2 as oip
    from modipick.oip.v2 import open_inference_grpc_pb2_grpc as oip_grpc

    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(MODEL) and client.is_model_ready("mnist")
    assert not client.is_model_ready("resnet50")
    meta = client.get_server_metadata()
    assert meta.name == "modipick" and "parameters" in meta.extensions
    model = client.get_model_metadata(MODEL)
    assert model.name == MODEL and [o.name for o in model.outputs] == ["scores", "label"]
    # the OIP's ModelMetadata.properties (Triton's message has no such field) lists the pool
    with grpc.insecure_channel(oip_selector.target) as channel:
        reply = oip_grpc.GRPCInferenceServiceStub(channel).ModelMetadata(oip.ModelMetadataRequest(name=MODEL))
    assert {key.split(":")[0] for key in reply.properties["modipick.pool"].split(",")} == set(live_suite.pool_models())


def test_prediction_with_client_timeout_as_the_sla_reports_the_model_that_ran(client, live_suite, digits):
    images, labels = digits
    pool = set(live_suite.pool_models())
    budgets, right = {}, 0
    for i in range(12):
        timeout_s = 1.0 if i % 2 else 3.0
        result = client.infer(MODEL, [_image_input(images[i])], client_timeout=timeout_s, request_id=f"oip-{i}")
        scores, label = result.as_numpy("scores"), result.as_numpy("label")
        assert scores.shape == (1, 10) and label.shape == (1,)
        assert int(label[0]) == int(np.argmax(scores[0]))
        right += int(label[0]) == int(labels[i])
        params = _params(result)
        assert params["modipick_disposition"] == "SERVED"
        assert params["modipick_model"] in pool and params["modipick_model_version"] >= 1
        assert params["modipick_reason"] in ("BASE", "EXPLORED", "FALLBACK")
        assert result.get_response().id == f"oip-{i}"
        assert result.get_response().model_name == MODEL
        budgets.setdefault(timeout_s, []).append(params["modipick_budget_ms"])
    assert right >= 9, f"{right}/12 digits right"
    # the budget is what the deadline left: at most the timeout (which gRPC rounds up on the wire by
    # up to 1 %, and less a learned reply leg that may sit a little below 0 on loopback), and about
    # 2 s apart for deadlines 2 s apart
    for timeout_s, spent in budgets.items():
        assert max(spent) <= timeout_s * 1000.0 * 1.01 + 5.0, budgets
    assert min(budgets[3.0]) - max(budgets[1.0]) > 1500.0, budgets


def test_sla_parameter_and_run_on_device(client, digits):
    images, _ = digits
    tensor = _image_input(images[0])
    # a deadline far beyond the SLA is not the SLA: the parameter is
    result = client.infer(MODEL, [tensor], client_timeout=10.0, parameters={"sla_ms": 300.0})
    assert _params(result)["modipick_disposition"] == "SERVED"
    assert _params(result)["modipick_budget_ms"] <= 300.0
    # no model runs in 0.01 ms: an OIP client without a model on the device gets DEADLINE_EXCEEDED at once
    with pytest.raises(InferenceServerException) as excinfo:
        client.infer(MODEL, [tensor], client_timeout=10.0, parameters={"sla_ms": 0.01})
    assert _status(excinfo) == "StatusCode.DEADLINE_EXCEEDED"
    assert "run on the device" in excinfo.value.message()
    # ... and one that has one asks for the answer as a reply
    result = client.infer(MODEL, [tensor], client_timeout=10.0,
                          parameters={"sla_ms": 0.01, "accept_run_on_device": True})
    params = _params(result)
    assert params["modipick_disposition"] == "RUN_ON_DEVICE" and params["modipick_model"]
    assert result.as_numpy("scores") is None


def test_run_on_device_refusal_names_the_model_in_trailing_metadata(oip_selector, digits):
    import grpc

    from modipick.oip.v2 import open_inference_grpc_pb2 as oip
    from modipick.oip.v2 import open_inference_grpc_pb2_grpc as oip_grpc

    image = np.asarray(digits[0][0], dtype=np.float32)[None]
    request = oip.ModelInferRequest(model_name=MODEL, raw_input_contents=[image.tobytes()])
    request.inputs.add(name="image", datatype="FP32", shape=list(image.shape))
    request.parameters["sla_ms"].double_param = 0.01
    with grpc.insecure_channel(oip_selector.target) as channel:
        with pytest.raises(grpc.RpcError) as excinfo:
            oip_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=10)
    trailing = dict(excinfo.value.trailing_metadata())
    assert excinfo.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert trailing[DISPOSITION_KEY] == "RUN_ON_DEVICE" and ":" in trailing[MODEL_KEY]


def test_typed_contents_and_uint8_are_accepted(oip_selector, digits):
    """Clients that send `contents` instead of raw bytes (KServe's, MLServer's) are served alike."""
    import grpc

    from modipick.oip.v2 import open_inference_grpc_pb2 as oip
    from modipick.oip.v2 import open_inference_grpc_pb2_grpc as oip_grpc

    images, labels = digits
    with grpc.insecure_channel(oip_selector.target) as channel:
        stub = oip_grpc.GRPCInferenceServiceStub(channel)
        for datatype, field in (("FP32", "fp32_contents"), ("UINT8", "uint_contents")):
            request = oip.ModelInferRequest(model_name=MODEL, outputs=[{"name": "label"}])
            tensor = request.inputs.add(name="image", datatype=datatype, shape=[1, 8, 8, 1])
            getattr(tensor.contents, field).extend(int(v) if datatype == "UINT8" else float(v)
                                                   for v in images[3].ravel())
            reply = stub.ModelInfer(request, timeout=2.0)
            assert [o.name for o in reply.outputs] == ["label"]
            assert np.frombuffer(reply.raw_output_contents[0], "<i4").tolist() == [int(labels[3])]


@pytest.mark.parametrize("case, status, words", [
    ("unknown model", "NOT_FOUND", "unknown model"),
    ("model version", "INVALID_ARGUMENT", "model_version"),
    ("no sla", "INVALID_ARGUMENT", "no SLA"),
    ("sla not a number", "INVALID_ARGUMENT", "sla_ms"),
    ("fp64", "INVALID_ARGUMENT", "datatype"),
    ("two inputs", "INVALID_ARGUMENT", "exactly 1 input"),
    ("wrong shape for the pool", "INVALID_ARGUMENT", "expects"),
    ("unknown output", "INVALID_ARGUMENT", "not an output"),
    ("id too long", "INVALID_ARGUMENT", "id: at most 128"),
])
def test_bad_requests_get_the_right_status(client, digits, case, status, words):
    image = np.asarray(digits[0][0], dtype=np.float32)
    kwargs: dict = {"model_name": MODEL, "inputs": [_image_input(image)], "client_timeout": 2.0}
    if case == "unknown model":
        kwargs["model_name"] = "resnet50"
    elif case == "model version":
        kwargs["model_version"] = "3"
    elif case == "no sla":
        kwargs["client_timeout"] = None
    elif case == "sla not a number":
        kwargs["parameters"] = {"sla_ms": "soon"}
    elif case == "fp64":
        tensor = triton.InferInput("image", [1, 8, 8, 1], "FP64")
        tensor.set_data_from_numpy(image[None].astype(np.float64))
        kwargs["inputs"] = [tensor]
    elif case == "two inputs":
        kwargs["inputs"] = [_image_input(image), _image_input(image, "second")]
    elif case == "wrong shape for the pool":
        kwargs["inputs"] = [_image_input(np.zeros((5, 5, 1)))]
    elif case == "unknown output":
        kwargs["outputs"] = [triton.InferRequestedOutput("probabilities")]
    elif case == "id too long":
        kwargs["request_id"] = "r" * 129
    with pytest.raises(InferenceServerException) as excinfo:
        client.infer(**kwargs)
    assert _status(excinfo) == f"StatusCode.{status}", excinfo.value.message()
    assert words in excinfo.value.message()


def _png(image: np.ndarray, pixel_max: float = 16.0) -> bytes:
    """An 8-bit grayscale PNG of a [h, w, 1] image (zlib and the PNG chunk layout, no imaging library)."""
    import struct
    import zlib

    pixels = np.clip(np.rint(image[..., 0] * 255.0 / pixel_max), 0, 255).astype(np.uint8)
    rows = b"".join(b"\0" + row.tobytes() for row in pixels)  # filter type 0 per row

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", pixels.shape[1], pixels.shape[0], 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def test_an_encoded_image_as_a_bytes_tensor(client, digits):
    images, labels = digits
    right = 0
    for i in range(10):
        tensor = triton.InferInput("image", [1], "BYTES")
        tensor.set_data_from_numpy(np.array([_png(images[i])], dtype=np.object_))
        result = client.infer(MODEL, [tensor], client_timeout=3.0)
        assert _params(result)["modipick_disposition"] == "SERVED"
        right += int(result.as_numpy("label")[0]) == int(labels[i])
    assert right >= 8, f"{right}/10"  # the Executor decoded the PNG to the pool's 8x8 input
