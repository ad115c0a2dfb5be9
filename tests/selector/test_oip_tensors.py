"""OIP messages <-> modipick's, without servers: every way an OIP client may send the image, the
parameters modipick reads, the tensors it answers with, and the executor backend's reading of a
server's outputs (raw and typed)."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modipick.executor.backends.oip import output_array
from modipick.oip.v2 import open_inference_grpc_pb2 as oip
from modipick.selector.oip import parse_model_names
from modipick.selector.oip_tensors import OipInvalid, add_outputs, read_options, requested_outputs, to_input
from modipick.v1 import common_pb2


def _request(datatype: str, shape: list[int], raw: bytes | None = None, **contents) -> oip.ModelInferRequest:
    request = oip.ModelInferRequest(model_name="digits")
    tensor = request.inputs.add(name="image", datatype=datatype, shape=shape)
    for field, values in contents.items():
        getattr(tensor.contents, field).extend(values)
    if raw is not None:
        request.raw_input_contents.append(raw)
    return request


IMAGE = np.arange(64, dtype=np.float32).reshape(1, 8, 8, 1) / 4.0


def test_fp32_raw_and_typed_contents_give_the_same_tensor():
    raw = to_input(_request("FP32", [1, 8, 8, 1], IMAGE.tobytes()))
    typed = to_input(_request("FP32", [1, 8, 8, 1], fp32_contents=IMAGE.ravel().tolist()))
    assert raw == typed
    assert (raw.tensor.dtype, list(raw.tensor.shape)) == ("float32", [1, 8, 8, 1])
    np.testing.assert_array_equal(np.frombuffer(raw.tensor.content, np.float32).reshape(IMAGE.shape), IMAGE)


def test_uint8_contents_become_bytes_and_must_fit_a_byte():
    got = to_input(_request("UINT8", [8, 8, 1], uint_contents=list(range(64))))
    assert got.tensor.dtype == "uint8" and got.tensor.content == bytes(range(64))
    with pytest.raises(OipInvalid, match="at most 255"):
        to_input(_request("UINT8", [8, 8, 1], uint_contents=[256] * 64))


def test_an_encoded_image_travels_as_one_bytes_element():
    png = b"\x89PNG fake but opaque here"
    raw = to_input(_request("BYTES", [1], struct.pack("<I", len(png)) + png))
    typed = to_input(_request("BYTES", [1], bytes_contents=[png]))
    assert raw == typed == common_pb2.Input(encoded_image=png)
    with pytest.raises(OipInvalid, match="says 99 bytes"):
        to_input(_request("BYTES", [1], struct.pack("<I", 99) + png))
    with pytest.raises(OipInvalid, match="one encoded image"):
        to_input(_request("BYTES", [2], bytes_contents=[png, png]))


@pytest.mark.parametrize("request_, words", [
    (_request("FP32", [1, 8, 8, 1], b"\0" * 12), "needs 256"),
    (_request("FP32", [1, 8, 8, 1], fp32_contents=[1.0]), "holds 1 values"),
    (_request("FP32", [0, 8], b""), "positive dimensions"),
    (_request("FP32", [1] * 9, b"\0\0\0\0"), "at most 8"),
    (_request("INT64", [1], b"\0" * 8), "not supported"),
    (oip.ModelInferRequest(model_name="digits"), "exactly 1 input"),
])
def test_malformed_inputs_name_the_field(request_, words):
    with pytest.raises(OipInvalid, match=words):
        to_input(request_)


def test_raw_and_typed_contents_together_are_refused():
    request = _request("FP32", [1], struct.pack("<f", 1.0), fp32_contents=[1.0])
    with pytest.raises(OipInvalid, match="must be empty"):
        to_input(request)


def test_parameters_modipick_reads():
    request = oip.ModelInferRequest()
    assert read_options(request).sla_ms is None
    request.parameters["sla_ms"].string_param = "150"
    request.parameters["client_id"].string_param = "phone-7"
    request.parameters["accept_run_on_device"].bool_param = True
    request.parameters["priority"].int64_param = 3  # others are left alone
    options = read_options(request)
    assert (options.sla_ms, options.client_id, options.accept_run_on_device) == (150.0, "phone-7", True)
    for value, words in ((-5.0, "positive"), ("soon", "must be a number"), (True, "must be a number")):
        request.parameters["sla_ms"].Clear()
        if isinstance(value, bool):
            request.parameters["sla_ms"].bool_param = value
        elif isinstance(value, str):
            request.parameters["sla_ms"].string_param = value
        else:
            request.parameters["sla_ms"].double_param = value
        with pytest.raises(OipInvalid, match=words):
            read_options(request)


def test_outputs_are_all_or_the_named_ones_in_their_order():
    assert requested_outputs(oip.ModelInferRequest()) == ("scores", "label")
    named = oip.ModelInferRequest(outputs=[{"name": "label"}, {"name": "scores"}])
    assert requested_outputs(named) == ("label", "scores")
    with pytest.raises(OipInvalid, match="not an output"):
        requested_outputs(oip.ModelInferRequest(outputs=[{"name": "logits"}]))
    response = oip.ModelInferResponse()
    add_outputs(response, common_pb2.Prediction(label=3, scores=[0.1, 0.2, 0.7]), ("label", "scores"))
    assert output_array(response, "label").tolist() == [3]
    np.testing.assert_allclose(output_array(response, "scores"), [[0.1, 0.2, 0.7]], rtol=1e-6)


def test_the_backend_reads_typed_outputs_and_refuses_broken_ones():
    response = oip.ModelInferResponse()
    response.outputs.add(name="probabilities", datatype="FP64", shape=[1, 2]).contents.fp64_contents.extend([.25, .75])
    assert output_array(response, "probabilities").tolist() == [[0.25, 0.75]]
    with pytest.raises(KeyError, match="no output 'scores'"):
        output_array(response, "scores")
    response.outputs[0].shape[:] = [1, 3]
    with pytest.raises(ValueError, match="holds 2 values"):
        output_array(response, "probabilities")


def test_virtual_model_names():
    assert parse_model_names(" digits, mnist ,") == ("digits", "mnist")
    assert parse_model_names("") == ()
    for bad in ("a b", "a/b", "x,x"):
        with pytest.raises(ValueError):
            parse_model_names(bad)


_datatypes = st.sampled_from(["FP32", "UINT8", "BYTES", "FP64", "INT64", "", "fp32", "BF16"]) | st.text(max_size=12)
_shapes = st.lists(st.integers(-2, 9) | st.sampled_from([2**31, 2**62, -(2**63)]), max_size=10)
_values = st.lists(st.integers(0, 300), max_size=80)


@st.composite
def _infer_requests(draw) -> oip.ModelInferRequest:
    request = oip.ModelInferRequest(model_name="digits")
    for _ in range(draw(st.integers(0, 2))):
        tensor = request.inputs.add(name="image", datatype=draw(_datatypes), shape=draw(_shapes))
        how = draw(st.sampled_from(["fp32", "uint", "bytes", "none"]))
        if how == "fp32":
            tensor.contents.fp32_contents.extend(float(v) for v in draw(_values))
        elif how == "uint":
            tensor.contents.uint_contents.extend(draw(_values))
        elif how == "bytes":
            tensor.contents.bytes_contents.extend(draw(st.lists(st.binary(max_size=20), max_size=3)))
    request.raw_input_contents.extend(draw(st.lists(st.binary(max_size=300), max_size=2)))
    for name in draw(st.lists(st.sampled_from(["sla_ms", "client_id", "policy", "accept_run_on_device", "x"]),
                              max_size=4)):
        param = request.parameters[name]
        kind = draw(st.sampled_from(["bool_param", "int64_param", "string_param", "double_param", "uint64_param"]))
        value = {"bool_param": st.booleans(), "int64_param": st.integers(-(2**63), 2**63 - 1),
                 "string_param": st.text(max_size=20), "double_param": st.floats(allow_nan=True),
                 "uint64_param": st.integers(0, 2**64 - 1)}[kind]
        setattr(param, kind, draw(value))
    for name in draw(st.lists(st.sampled_from(["scores", "label", "probabilities", ""]), max_size=3)):
        request.outputs.add(name=name)
    return request


@settings(max_examples=400, deadline=None)
@given(_infer_requests())
def test_any_request_translates_or_is_refused_by_name(request_):
    """Never an unhandled error (the front door would answer UNKNOWN): a translation, or OipInvalid."""
    for step in (to_input, read_options, requested_outputs):
        try:
            step(request_)
        except OipInvalid as exc:
            assert str(exc).split(":")[0].split(".")[0].split("[")[0] in (
                "inputs", "raw_input_contents", "parameters", "outputs")
