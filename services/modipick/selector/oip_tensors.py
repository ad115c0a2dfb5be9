"""Open Inference Protocol messages <-> the Selector's own: one input tensor in, the prediction's
tensors out, and the request parameters modipick reads. Pure translation (no gRPC calls); every
problem is an `OipInvalid` naming the OIP field, answered INVALID_ARGUMENT.

Input: exactly one tensor, FP32 or UINT8 (an already-shaped image, e.g. [1, 8, 8, 1]) or BYTES
with one element (an encoded PNG/JPEG image), in `raw_input_contents` (what Triton's clients send)
or in the tensor's typed `contents`. Output: `scores` (FP32 [1, classes]) and `label` (INT32 [1]),
as `raw_output_contents`, all of them or the ones the request names.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numpy as np

from modipick.oip.v2 import open_inference_grpc_pb2 as oip
from modipick.v1 import common_pb2

# OIP datatype -> (modipick.v1.Tensor dtype, numpy dtype)
TENSOR_DATATYPES = {"FP32": ("float32", np.dtype("<f4")), "UINT8": ("uint8", np.dtype("u1"))}
IMAGE_DATATYPE = "BYTES"  # one encoded image
MAX_DIMS = 8
OUTPUTS = ("scores", "label")

# request parameters modipick reads (any other parameter is ignored, as OIP servers do)
SLA_PARAMETER = "sla_ms"
CLIENT_ID_PARAMETER = "client_id"
POLICY_PARAMETER = "policy"
ACCEPT_ON_DEVICE_PARAMETER = "accept_run_on_device"


class OipInvalid(ValueError):
    """The request cannot be served as sent; the message names the OIP field."""


@dataclass(frozen=True, slots=True)
class RequestOptions:
    sla_ms: float | None         # None: take the SLA from the call's deadline
    client_id: str
    policy: str
    accept_run_on_device: bool   # answer RUN_ON_DEVICE as an OK reply (else as DEADLINE_EXCEEDED)


def read_options(request: oip.ModelInferRequest) -> RequestOptions:
    params = request.parameters
    sla = _number(params[SLA_PARAMETER], SLA_PARAMETER) if SLA_PARAMETER in params else None
    if sla is not None and not (math.isfinite(sla) and sla > 0):
        raise OipInvalid(f"parameters.{SLA_PARAMETER}: must be a positive number of ms, got {sla!r}")
    return RequestOptions(sla_ms=sla, client_id=_string(params, CLIENT_ID_PARAMETER),
                          policy=_string(params, POLICY_PARAMETER),
                          accept_run_on_device=_flag(params, ACCEPT_ON_DEVICE_PARAMETER))


def _number(param: oip.InferParameter, name: str) -> float:
    kind = param.WhichOneof("parameter_choice")
    if kind in ("double_param", "int64_param", "uint64_param"):
        return float(getattr(param, kind))
    if kind == "string_param":
        try:
            return float(param.string_param)
        except ValueError:
            pass
    raise OipInvalid(f"parameters.{name}: must be a number, got {_shown(param)}")


def _string(params, name: str) -> str:
    if name not in params:
        return ""
    param = params[name]
    if param.WhichOneof("parameter_choice") != "string_param":
        raise OipInvalid(f"parameters.{name}: must be a string, got {_shown(param)}")
    return param.string_param


def _flag(params, name: str) -> bool:
    if name not in params:
        return False
    param = params[name]
    if param.WhichOneof("parameter_choice") != "bool_param":
        raise OipInvalid(f"parameters.{name}: must be a bool, got {_shown(param)}")
    return param.bool_param


def _shown(param: oip.InferParameter) -> str:
    kind = param.WhichOneof("parameter_choice")
    return "nothing" if kind is None else f"{kind} {str(getattr(param, kind))[:40]!r}"


def to_input(request: oip.ModelInferRequest) -> common_pb2.Input:
    """The request's one input tensor as a modipick.v1.Input."""
    if len(request.inputs) != 1:
        raise OipInvalid(f"inputs: expected exactly 1 input tensor (the image), got {len(request.inputs)}")
    tensor = request.inputs[0]
    if request.raw_input_contents:
        if len(request.raw_input_contents) != 1:
            raise OipInvalid(f"raw_input_contents: holds {len(request.raw_input_contents)} entries for 1 input")
        if tensor.HasField("contents"):
            raise OipInvalid("inputs[0].contents: must be empty when raw_input_contents is used")
        raw: bytes | None = request.raw_input_contents[0]
    else:
        raw = None
    shape = [int(d) for d in tensor.shape]
    if len(shape) > MAX_DIMS:
        raise OipInvalid(f"inputs[0].shape: has {len(shape)} dimensions, at most {MAX_DIMS}")
    if not shape or min(shape) <= 0:
        raise OipInvalid(f"inputs[0].shape: must be positive dimensions, got {shape}")
    count = math.prod(shape)
    if tensor.datatype == IMAGE_DATATYPE:
        return common_pb2.Input(encoded_image=_one_image(tensor, raw, count))
    if tensor.datatype not in TENSOR_DATATYPES:
        raise OipInvalid(f"inputs[0].datatype: {tensor.datatype[:16]!r} is not supported; send FP32 or UINT8 "
                         f"(an image tensor) or {IMAGE_DATATYPE} (one encoded PNG/JPEG image)")
    dtype_name, dtype = TENSOR_DATATYPES[tensor.datatype]
    if raw is None:
        values = (tensor.contents.fp32_contents if tensor.datatype == "FP32" else tensor.contents.uint_contents)
        if len(values) != count:
            raise OipInvalid(f"inputs[0].contents: holds {len(values)} values; shape {shape} needs {count}")
        if tensor.datatype == "UINT8" and values and max(values) > 255:
            raise OipInvalid("inputs[0].contents.uint_contents: UINT8 values must be at most 255")
        raw = np.asarray(values, dtype=dtype).tobytes()
    elif len(raw) != count * dtype.itemsize:
        raise OipInvalid(f"raw_input_contents[0]: holds {len(raw)} bytes; shape {shape} of "
                         f"{tensor.datatype} needs {count * dtype.itemsize}")
    return common_pb2.Input(tensor=common_pb2.Tensor(dtype=dtype_name, shape=shape, content=raw))


def _one_image(tensor, raw: bytes | None, count: int) -> bytes:
    if count != 1:
        raise OipInvalid(f"inputs[0].shape: a {IMAGE_DATATYPE} input holds one encoded image, shape "
                         f"{list(tensor.shape)} holds {count}")
    if raw is None:
        if len(tensor.contents.bytes_contents) != 1:
            raise OipInvalid(f"inputs[0].contents.bytes_contents: expected 1 element, "
                             f"got {len(tensor.contents.bytes_contents)}")
        image = bytes(tensor.contents.bytes_contents[0])
    else:  # raw BYTES: each element is a 4-byte little-endian length, then that many bytes
        if len(raw) < 4:
            raise OipInvalid("raw_input_contents[0]: too short for a length-prefixed BYTES element")
        (length,) = struct.unpack_from("<I", raw)
        if length != len(raw) - 4:
            raise OipInvalid(f"raw_input_contents[0]: the BYTES element says {length} bytes, "
                             f"{len(raw) - 4} follow (one element expected)")
        image = bytes(raw[4:])
    if not image:
        raise OipInvalid("inputs[0]: the encoded image is empty")
    return image


def requested_outputs(request: oip.ModelInferRequest) -> tuple[str, ...]:
    if not request.outputs:
        return OUTPUTS
    names = tuple(o.name for o in request.outputs)
    unknown = [n for n in names if n not in OUTPUTS]
    if unknown:
        raise OipInvalid(f"outputs: {unknown[0][:40]!r} is not an output of this model; it has "
                         f"{', '.join(OUTPUTS)}")
    return names


def add_outputs(response: oip.ModelInferResponse, prediction: common_pb2.Prediction,
                names: tuple[str, ...]) -> None:
    for name in names:
        if name == "scores":
            scores = np.asarray(prediction.scores, dtype="<f4")
            response.outputs.add(name=name, datatype="FP32", shape=[1, len(scores)])
            response.raw_output_contents.append(scores.tobytes())
        else:
            response.outputs.add(name=name, datatype="INT32", shape=[1])
            response.raw_output_contents.append(np.asarray([prediction.label], dtype="<i4").tobytes())


def set_parameter(params, name: str, value: str | int | float | bool) -> None:
    if isinstance(value, bool):
        params[name].bool_param = value
    elif isinstance(value, int):
        params[name].int64_param = value
    elif isinstance(value, float):
        params[name].double_param = value
    else:
        params[name].string_param = value
