"""ExecuteStream on a real Executor (embedded TensorFlow, digits pool) over real gRPC: many calls on
one stream, answered like unary Execute; refusals are answers; cancel, deadline and drain."""

from __future__ import annotations

import queue
import threading
import time

import grpc
import pytest
from executor_helpers import execute_request, tensor_input
from fixtures_suite import wait_until

from modipick.v1 import executor_pb2

pytestmark = pytest.mark.tf


def call(call_id: int, request: executor_pb2.ExecuteRequest, timeout_ms: float = 5000.0) -> executor_pb2.ExecuteCall:
    return executor_pb2.ExecuteCall(call_id=call_id, request=request, timeout_ms=timeout_ms)


class OpenStream:
    """A client side of ExecuteStream whose messages the test sends one by one."""

    def __init__(self, stub) -> None:
        self._outbox: queue.Queue = queue.Queue()
        self.answers: dict[int, executor_pb2.ExecuteAnswer] = {}
        self.messages = 0
        self.error: grpc.RpcError | None = None
        self._responses = stub.ExecuteStream(iter(self._outbox.get, None), timeout=60)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def send(self, *calls: executor_pb2.ExecuteCall) -> None:
        self._outbox.put(executor_pb2.ExecuteStreamRequest(calls=list(calls)))

    def close(self, timeout_s: float = 30.0) -> None:
        self._outbox.put(None)
        self.wait_ended(timeout_s)

    def wait_ended(self, timeout_s: float = 30.0) -> None:
        self._reader.join(timeout_s)
        assert not self._reader.is_alive(), "the stream did not end"

    def _read(self) -> None:
        try:
            for message in self._responses:
                self.messages += 1
                for answer in message.answers:
                    assert answer.call_id not in self.answers, f"call {answer.call_id} answered twice"
                    self.answers[answer.call_id] = answer
        except grpc.RpcError as exc:
            self.error = exc


def test_every_call_on_a_stream_is_answered_as_unary_execute_answers_it(embedded_executor, stub_for, held_out):
    stub = stub_for(embedded_executor)
    images, _ = held_out
    models = ["cnn-small", "cnn-large", "mlp-tiny"]
    # 9 calls: within this Executor's admission bound (2 running + 8 waiting)
    requests = {i + 1: execute_request(models[i % 3], tensor_input(images[i]), request_id=f"s-{i}") for i in range(9)}
    stream = OpenStream(stub)
    ids = sorted(requests)
    for chunk in (ids[:3], ids[3:6], ids[6:]):  # several calls per message, several messages
        stream.send(*(call(i, requests[i]) for i in chunk))
    wait_until(lambda: len(stream.answers) == len(requests), timeout_s=30)
    stream.close()
    assert stream.error is None
    for call_id, request in requests.items():
        answer = stream.answers[call_id]
        assert answer.WhichOneof("result") == "response", answer
        unary = stub.Execute(request, timeout=10)
        assert answer.response.request_id == request.request_id
        assert answer.response.model == unary.model
        assert answer.response.prediction.label == unary.prediction.label
        assert answer.response.prediction.scores == pytest.approx(list(unary.prediction.scores), abs=1e-5)


def test_refusals_are_answers_and_the_stream_goes_on(embedded_executor, stub_for, held_out):
    good = execute_request("cnn-small", tensor_input(held_out[0][0]))
    stream = OpenStream(stub_for(embedded_executor))
    stream.send(call(1, execute_request("no-such-model", tensor_input(held_out[0][0]))),
                call(2, execute_request("cnn-small", tensor_input(held_out[0][0][:4]))),  # wrong shape
                call(3, good, timeout_ms=0.0),
                call(4, good, timeout_ms=float("nan")))
    stream.send(call(5, good))
    wait_until(lambda: len(stream.answers) == 5, timeout_s=30)
    stream.close()
    assert stream.error is None  # the stream ended as the caller closed it, not because of the refusals
    codes = {i: grpc.StatusCode.OK if a.WhichOneof("result") == "response" else
             next(c for c in grpc.StatusCode if c.value[0] == a.error.code) for i, a in stream.answers.items()}
    assert codes == {1: grpc.StatusCode.NOT_FOUND, 2: grpc.StatusCode.INVALID_ARGUMENT,
                     3: grpc.StatusCode.INVALID_ARGUMENT, 4: grpc.StatusCode.INVALID_ARGUMENT, 5: grpc.StatusCode.OK}
    assert "no-such-model" in stream.answers[1].error.message
    assert "timeout_ms" in stream.answers[3].error.message


def test_an_undecodable_stream_message_ends_the_stream_with_invalid_argument(embedded_executor, held_out):
    """Also right behind calls whose answers are being written (found by the fuzzer: the refusal
    raced the writes and the call hung until its deadline)."""
    good = executor_pb2.ExecuteStreamRequest(calls=[
        call(i, execute_request("cnn-small", tensor_input(held_out[0][i]))) for i in range(1, 4)]).SerializeToString()
    with grpc.insecure_channel(embedded_executor.target) as channel:
        raw = channel.stream_stream("/modipick.v1.ExecutorService/ExecuteStream",
                                    request_serializer=None, response_deserializer=None)
        for messages in [[b"\xff\xff\xff garbage"]] + [[good, b"\xff\xff"], [good, good, b"\xff\xff"]] * 5:
            started = time.monotonic()
            with pytest.raises(grpc.RpcError) as err:
                list(raw(iter(messages), timeout=10))
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
            assert "ExecuteStream" in err.value.details()
            assert time.monotonic() - started < 2.0


def test_a_call_ends_at_its_timeout_from_arrival(slow_executor, stub_for, held_out):
    app, backend, sink = slow_executor(delay_s=2.0)
    stream = OpenStream(stub_for(app))
    started = time.monotonic()
    stream.send(call(7, execute_request("cnn-small", tensor_input(held_out[0][0])), timeout_ms=300.0))
    wait_until(lambda: 7 in stream.answers, timeout_s=10)
    elapsed = time.monotonic() - started
    stream.close()
    assert stream.answers[7].error.code == grpc.StatusCode.DEADLINE_EXCEEDED.value[0]
    assert 0.25 <= elapsed < 2.0  # at its timeout, before the 2 s run would have answered
    wait_until(lambda: sink.observations)
    assert sink.observations[0].failed and sink.observations[0].error_code == "DEADLINE_EXCEEDED"


def test_a_cancelled_call_gets_no_answer_and_is_recorded_as_cancelled(slow_executor, stub_for, held_out):
    app, backend, sink = slow_executor(delay_s=1.5)
    stream = OpenStream(stub_for(app))
    stream.send(call(1, execute_request("cnn-small", tensor_input(held_out[0][0]))))
    wait_until(lambda: app.service.admission.running == 1)
    stream.send(executor_pb2.ExecuteCall(call_id=1, cancel=True))
    wait_until(lambda: sink.observations, timeout_s=5)
    started = time.monotonic()
    stream.close()
    assert time.monotonic() - started < 1.5  # nothing left to wait for: the cancelled 1.5 s run is gone
    assert stream.error is None and stream.answers == {}
    assert sink.observations[0].error_code == "CANCELLED"


def test_a_draining_executor_answers_what_it_runs_and_ends_the_stream(slow_executor, stub_for, held_out, loop_thread):
    app, backend, sink = slow_executor(delay_s=0.5)
    stream = OpenStream(stub_for(app))
    request = execute_request("cnn-small", tensor_input(held_out[0][0]))
    stream.send(call(1, request))
    wait_until(lambda: app.service.admission.running == 1)

    async def drain() -> None:
        app.service.drain()

    loop_thread.run(drain())
    stream.wait_ended(10)  # without the caller closing its side
    assert stream.error is None
    assert stream.answers[1].WhichOneof("result") == "response"
    # a new stream on the draining Executor: its calls are refused, not queued
    late = OpenStream(stub_for(app))
    late.send(call(2, request))
    late.wait_ended(10)
    assert late.error is None and (2 not in late.answers
                                   or late.answers[2].error.code == grpc.StatusCode.UNAVAILABLE.value[0])


def test_the_stream_is_greeted_with_initial_metadata_before_any_message(embedded_executor, stub_for):
    """The Selector writes nothing until the Executor's initial metadata says the stream is served
    (modipick.selector.execute_transport.GrpcConduit), so it must come with no message sent."""
    from modipick.runtime.metadata import STREAM_SERVED

    outbox: queue.Queue = queue.Queue()
    responses = stub_for(embedded_executor).ExecuteStream(iter(outbox.get, None), timeout=30)
    greeting: list = []
    greeted = threading.Thread(target=lambda: greeting.extend(responses.initial_metadata()), daemon=True)
    greeted.start()
    greeted.join(10)
    try:
        assert not greeted.is_alive(), "no initial metadata before the first message"
        assert STREAM_SERVED in [tuple(item) for item in greeting], greeting
        assert not responses.done()
    finally:
        outbox.put(None)
        assert list(responses) == []
