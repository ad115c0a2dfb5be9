"""Bad requests get the right status and a message naming what is wrong; the services stay up."""

from __future__ import annotations

import math
import time

import grpc
import numpy as np
import pytest

from suite_support import admin_channel, digit_tensor, stamp
from modipick.v1 import (common_pb2, profiler_pb2, profiler_pb2_grpc, selector_pb2,
                         selector_pb2_grpc)

HOUR_NS = 3600 * 10**9


def _infer(**overrides) -> selector_pb2.InferRequest:
    request = selector_pb2.InferRequest(request_id="bad-input", input=digit_tensor(np.zeros((8, 8))), sla_ms=200.0,
                                        client_send_time=stamp(time.time_ns()))
    for field, value in overrides.items():
        if value is None:
            request.ClearField(field)
        elif field in ("input", "client_send_time"):
            getattr(request, field).CopyFrom(value)
        else:
            setattr(request, field, value)
    return request


def _tensor(dtype="float32", shape=(1, 8, 8, 1), content=None):
    size = {"float32": 4, "uint8": 1}.get(dtype, 4) * math.prod(shape)
    return common_pb2.Input(tensor=common_pb2.Tensor(dtype=dtype, shape=list(shape),
                                                     content=bytes(size) if content is None else content))


INFER_CASES = [
    ("sla zero", dict(sla_ms=0.0), "sla_ms"),
    ("sla negative", dict(sla_ms=-5.0), "sla_ms"),
    ("sla nan", dict(sla_ms=float("nan")), "sla_ms"),
    ("sla inf", dict(sla_ms=float("inf")), "sla_ms"),
    ("sla absurd", dict(sla_ms=2 * 3_600_000.0), "sla_ms"),
    ("no input", dict(input=None), "input"),
    ("empty image", dict(input=common_pb2.Input(encoded_image=b"")), "input.encoded_image"),
    ("tensor dtype", dict(input=_tensor(dtype="int64")), "input.tensor.dtype"),
    ("tensor shape", dict(input=_tensor(shape=(1, 0, 8, 1))), "input.tensor.shape"),
    ("tensor content", dict(input=_tensor(content=b"\0" * 10)), "input.tensor.content"),
    ("no send time", dict(client_send_time=None), "client_send_time"),
    ("send time in the future", dict(client_send_time=stamp(time.time_ns() + HOUR_NS)), "client_send_time"),
    ("send time far in the past", dict(client_send_time=stamp(time.time_ns() - HOUR_NS)), "client_send_time"),
    ("unknown policy", dict(policy="fastest-please"), "policy"),
    ("oracle policy", dict(policy="oracle"), "hindsight"),
]


@pytest.mark.parametrize("case, overrides, named", INFER_CASES, ids=[c[0] for c in INFER_CASES])
def test_infer_refuses_bad_requests(live_suite, case, overrides, named):
    if "send time" in case and overrides["client_send_time"] is not None:  # re-stamp: params were built at import
        sign = 1 if "future" in case else -1
        overrides = dict(client_send_time=stamp(time.time_ns() + sign * HOUR_NS))
    with grpc.insecure_channel(live_suite.selector_target) as channel:
        stub = selector_pb2_grpc.SelectorServiceStub(channel)
        with pytest.raises(grpc.RpcError) as err:
            stub.Infer(_infer(**overrides), timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
        assert named in err.value.details()
        if case == "unknown policy":
            assert "modipick" in err.value.details() and "dynamic_greedy" in err.value.details()
        # still serving
        assert stub.Infer(_infer(sla_ms=1000.0), timeout=10).disposition == selector_pb2.DISPOSITION_SERVED


@pytest.mark.parametrize("case, image", [
    ("undecodable png", common_pb2.Input(encoded_image=b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)),
    ("wrong tensor shape", _tensor(shape=(1, 3, 3, 1))),
    ("not an image at all", common_pb2.Input(encoded_image=b"hello, world")),
])
def test_inputs_the_executor_cannot_use_are_invalid_argument(live_suite, case, image):
    with grpc.insecure_channel(live_suite.selector_target) as channel:
        stub = selector_pb2_grpc.SelectorServiceStub(channel)
        with pytest.raises(grpc.RpcError) as err:
            stub.Infer(_infer(input=image, sla_ms=2000.0), timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
        assert err.value.details().startswith("executor:")


@pytest.mark.parametrize("request_, named", [
    (selector_pb2.SelectRequest(sla_ms=-1.0), "sla_ms"),
    (selector_pb2.SelectRequest(sla_ms=100.0), "client_send_time"),
    (selector_pb2.SelectRequest(sla_ms=100.0, policy="nope"), "policy"),
])
def test_select_refuses_bad_requests(live_suite, request_, named):
    request = selector_pb2.SelectRequest()
    request.CopyFrom(request_)
    if named != "client_send_time":
        request.client_send_time.CopyFrom(stamp(time.time_ns()))
    with grpc.insecure_channel(live_suite.selector_target) as channel:
        with pytest.raises(grpc.RpcError) as err:
            selector_pb2_grpc.SelectorServiceStub(channel).Select(request, timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and named in err.value.details()


@pytest.mark.parametrize("request_, named", [
    (selector_pb2.ReportOutcomeRequest(e2e_ms=10.0), "model.name"),
    (selector_pb2.ReportOutcomeRequest(model=common_pb2.ModelRef(name="cnn-large", version=1),
                                       e2e_ms=float("nan")), "e2e_ms"),
    (selector_pb2.ReportOutcomeRequest(model=common_pb2.ModelRef(name="cnn-large", version=1), e2e_ms=5.0,
                                       sla_ms=-3.0), "sla_ms"),
    (selector_pb2.ReportOutcomeRequest(model=common_pb2.ModelRef(name="cnn-large", version=1), e2e_ms=5.0,
                                       true_label=-2), "true_label"),
])
def test_report_outcome_refuses_bad_reports(live_suite, request_, named):
    with grpc.insecure_channel(live_suite.selector_target) as channel:
        with pytest.raises(grpc.RpcError) as err:
            selector_pb2_grpc.SelectorServiceStub(channel).ReportOutcome(request_, timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and named in err.value.details()


def _ref(name="", version=0):
    return common_pb2.ModelRef(name=name, version=version)


@pytest.mark.parametrize("rpc, request_, code, named", [
    ("RegisterModel", profiler_pb2.RegisterModelRequest(model=_ref(version=1), declared_accuracy=50),
     grpc.StatusCode.INVALID_ARGUMENT, "model.name"),
    ("RegisterModel", profiler_pb2.RegisterModelRequest(model=_ref("m", 0), declared_accuracy=50),
     grpc.StatusCode.INVALID_ARGUMENT, "model.version"),
    ("RegisterModel", profiler_pb2.RegisterModelRequest(model=_ref("m", 1), declared_accuracy=150),
     grpc.StatusCode.INVALID_ARGUMENT, "declared_accuracy"),
    ("RegisterModel", profiler_pb2.RegisterModelRequest(model=_ref("m", 1), declared_accuracy=float("nan")),
     grpc.StatusCode.INVALID_ARGUMENT, "declared_accuracy"),
    ("DeregisterModel", profiler_pb2.DeregisterModelRequest(model=_ref("never-registered", 1)),
     grpc.StatusCode.NOT_FOUND, "never-registered"),
    ("ProbeModel", profiler_pb2.ProbeModelRequest(model=_ref("never-registered", 1)),
     grpc.StatusCode.NOT_FOUND, "never-registered"),
    ("ProbeModel", profiler_pb2.ProbeModelRequest(model=_ref("cnn-large", 1), runs=5000),
     grpc.StatusCode.INVALID_ARGUMENT, "runs"),
    ("RecordOutcome", profiler_pb2.RecordOutcomeRequest(model=_ref("cnn-large", 0), true_label=1),
     grpc.StatusCode.INVALID_ARGUMENT, "version"),
    ("RecordOutcome", profiler_pb2.RecordOutcomeRequest(model=_ref("never-registered", 1), true_label=1),
     grpc.StatusCode.NOT_FOUND, "never-registered"),
])
def test_profiler_refuses_bad_requests(live_suite, rpc, request_, code, named):
    with admin_channel(live_suite.profiler_target) as channel:
        with pytest.raises(grpc.RpcError) as err:
            getattr(profiler_pb2_grpc.ProfilerServiceStub(channel), rpc)(request_, timeout=10)
    assert err.value.code() == code and named in err.value.details(), err.value.details()


def test_no_eligible_model_is_unavailable_with_the_reason(live_suite):
    """A Selector on a store nobody registered models in (another namespace) refuses clearly."""
    from modipick.client import ModiPickClient, Unavailable

    app = live_suite.start_selector(store_options={"namespace": "nobody-registered-here"})
    with ModiPickClient(app.target) as client:
        with pytest.raises(Unavailable, match="no model registered"):
            client.infer(np.zeros((8, 8)), 500)
