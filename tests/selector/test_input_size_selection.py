"""The Selector picks among the models that take the uploaded input's size: the profiles carry the
size the Executor's signature declares, and each Infer keeps the models of its image's size or less
(a tensor: exactly its size)."""

from __future__ import annotations

import io

import grpc
import numpy as np
import pytest
from PIL import Image

from fixtures_suite import LoopThread
from modipick.client.status import status_details
from modipick.core import Candidate, ModelProfile
from modipick.selector.cache import Snapshot
from modipick.selector.service import _taking_input
from modipick.v1 import common_pb2, selector_pb2, selector_pb2_grpc

# (name, input px, mean ms, accuracy): at a generous SLA risk_aware picks the most accurate that fits
MODELS = [("mobilenet-96", 96, 8.0, 60.0), ("mobilenet-160", 160, 14.0, 68.0),
          ("mobilenet-224", 224, 25.0, 71.0)]


def jpeg(width: int, height: int | None = None) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height or width), (90, 140, 30)).save(out, format="JPEG", quality=80)
    return out.getvalue()


def png(width: int) -> bytes:
    out = io.BytesIO()
    Image.new("L", (width, width), 7).save(out, format="PNG")
    return out.getvalue()


def tensor(size: int) -> common_pb2.Input:
    content = np.zeros((1, size, size, 3), dtype=np.uint8).tobytes()
    return common_pb2.Input(tensor=common_pb2.Tensor(dtype="uint8", shape=[1, size, size, 3], content=content))


def profiles(*extra: ModelProfile) -> list[ModelProfile]:
    return [ModelProfile(name=n, version=1, declared_accuracy=acc, mean_ms=mean, var_ms2=1.0, samples=100,
                         state="eligible", input_size=size) for n, size, mean, acc in MODELS] + list(extra)


def names(candidates) -> list[str]:
    return [c.name for c in candidates]


def test_the_snapshot_keeps_each_candidates_size_and_whether_they_differ():
    snap = Snapshot.build(profiles(ModelProfile(name="zz-warming", state="warming", input_size=64)), 0.0, 1)
    assert names(snap.candidates) == ["mobilenet-160", "mobilenet-224", "mobilenet-96"]
    assert snap.input_sizes == (160, 224, 96) and snap.sized
    digits = Snapshot.build([ModelProfile(name=n, state="eligible", input_size=28) for n in ("a", "b")], 0.0, 1)
    assert not digits.sized  # one size for all: no input restricts them
    assert not Snapshot.build([ModelProfile(name="a", state="eligible")], 0.0, 1).sized


@pytest.mark.parametrize("input,expected", [
    (common_pb2.Input(encoded_image=jpeg(224)), ["mobilenet-160", "mobilenet-224", "mobilenet-96"]),
    (common_pb2.Input(encoded_image=jpeg(200, 160)), ["mobilenet-160", "mobilenet-96"]),
    (common_pb2.Input(encoded_image=png(96)), ["mobilenet-96"]),
    (common_pb2.Input(encoded_image=png(48)), ["mobilenet-160", "mobilenet-224", "mobilenet-96"]),  # none fits
    (common_pb2.Input(encoded_image=b"GIF89a..."), ["mobilenet-160", "mobilenet-224", "mobilenet-96"]),
    (tensor(160), ["mobilenet-160"]),
    (tensor(200), ["mobilenet-160", "mobilenet-224", "mobilenet-96"]),
])
def test_the_decision_sees_the_models_that_take_the_input(input, expected):
    snap = Snapshot.build(profiles(), 0.0, 1)
    assert names(_taking_input(snap.candidates, snap.input_sizes, input)) == expected


def test_a_model_without_a_declared_size_takes_every_input():
    snap = Snapshot.build(profiles(ModelProfile(name="any", declared_accuracy=10.0, state="eligible")), 0.0, 1)
    assert names(_taking_input(snap.candidates, snap.input_sizes, common_pb2.Input(encoded_image=png(96)))) == [
        "any", "mobilenet-96"]


@pytest.fixture(scope="module")
def sized_selector():
    """A Selector on sized profiles whose Executor address answers nothing: the execution fails,
    and the failure names the model the Selector chose."""
    from modipick.selector.app import SelectorSettings, start_selector
    from modipick.stores import InMemoryProfileStore

    store = InMemoryProfileStore()
    for profile in profiles():
        store.register(profile)
    loop = LoopThread()
    app = loop.run(start_selector(SelectorSettings(store_url="memory", executor_target="127.0.0.1:9",
                                                   refresh_ms=600_000.0), store=store))
    channel = grpc.insecure_channel(app.target)
    grpc.channel_ready_future(channel).result(timeout=10)
    try:
        yield selector_pb2_grpc.SelectorServiceStub(channel)
    finally:
        channel.close()
        loop.run(app.stop(0))
        loop.close()


def chosen(stub, input: common_pb2.Input) -> str:
    with pytest.raises(grpc.RpcError) as failed:
        stub.Infer(selector_pb2.InferRequest(request_id=f"in-{id(input)}", sla_ms=2000.0, input=input,
                                             policy="risk_aware"), timeout=2.0)  # the deadline carries the SLA
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE, failed.value
    return status_details(failed.value.trailing_metadata()).metadata["model"]


@pytest.mark.parametrize("input,model", [
    (common_pb2.Input(encoded_image=jpeg(224)), "mobilenet-224:1"),
    (common_pb2.Input(encoded_image=jpeg(160)), "mobilenet-160:1"),
    (common_pb2.Input(encoded_image=png(96)), "mobilenet-96:1"),
    (tensor(96), "mobilenet-96:1"),
    (common_pb2.Input(encoded_image=png(32)), "mobilenet-224:1"),  # none takes 32 px: the Executor resizes
])
def test_infer_runs_the_most_accurate_model_that_takes_the_upload(sized_selector, input, model):
    assert chosen(sized_selector, input) == model


def test_the_profiler_registers_the_input_size_the_executor_serves(live_suite):
    from modipick.v1 import executor_pb2, executor_pb2_grpc

    live_suite.wait_eligible(live_suite.pool_models())
    with grpc.insecure_channel(live_suite.executor_target) as channel:
        listed = executor_pb2_grpc.ExecutorServiceStub(channel).ListModels(executor_pb2.ListModelsRequest(),
                                                                           timeout=10.0)
    served = {s.model.name: list(s.input_shape) for s in listed.models}
    assert all(len(shape) == 4 and shape[1] == shape[2] > 0 for shape in served.values()), served
    # through the Profiler's discovery, the Lua register script and Redis, back to the Selector's cache
    assert {name: p.input_size for name, p in live_suite.profiles().items()} == {
        name: shape[1] for name, shape in served.items()}
    snapshot = live_suite.selector.cache.snapshot
    assert set(snapshot.input_sizes) == {shape[1] for shape in served.values()}
