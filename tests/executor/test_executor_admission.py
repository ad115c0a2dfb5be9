"""Deadlines, the bounded queue and observations, on a real embedded backend made slow on purpose."""

from __future__ import annotations

import time

import grpc
import pytest
from executor_support import execute_request, tensor_input

from modipick.client.status import status_details
from modipick.v1 import executor_pb2

pytestmark = pytest.mark.tf


def wait_for(predicate, timeout_s: float = 5.0) -> None:
    end = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < end, "condition not reached"
        time.sleep(0.01)


def test_a_run_past_the_deadline_ends_at_the_deadline(slow_executor, stub_for, held_out):
    app, backend, sink = slow_executor(delay_s=2.0)
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as err:
        stub_for(app).Execute(execute_request("cnn-small", tensor_input(held_out[0][0])), timeout=0.3)
    elapsed = time.monotonic() - started
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert elapsed >= 0.25
    assert backend.finished == 0  # it ended at its deadline, before the 2 s run did (however busy the machine)
    wait_for(lambda: sink.observations)
    assert sink.observations[0].failed and sink.observations[0].name == "cnn-small"
    # the abandoned run keeps its slot until the backend really finishes: the CPU bound holds
    assert app.service.admission.running == 1
    wait_for(lambda: backend.finished == 1, timeout_s=10)
    wait_for(lambda: app.service.admission.running == 0)
    # 2 s against a 300 ms budget: held up by something else than the model, and not learned
    assert [o.failed for o in sink.observations] == [True]


def test_a_run_that_ends_within_twice_its_budget_is_learned_with_its_whole_time(slow_executor, stub_for, held_out):
    app, backend, sink = slow_executor(delay_s=1.0)
    # 1 s against 0.7: late, yet ~400 ms inside twice the budget, more than a busy machine adds to a sleep
    with pytest.raises(grpc.RpcError) as err:
        stub_for(app).Execute(execute_request("cnn-small", tensor_input(held_out[0][0])), timeout=0.7)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    wait_for(lambda: len(sink.observations) == 2, timeout_s=10)
    missed, late = sink.observations
    assert missed.failed and missed.error_code == "DEADLINE_EXCEEDED"
    assert not late.failed and late.name == "cnn-small" and late.request_id == missed.request_id
    assert 950.0 <= late.queue_ms + late.execution_ms < 1400.0, late


def test_a_caller_that_gives_up_early_is_recorded_as_cancelled(slow_executor, stub_for, held_out):
    app, backend, sink = slow_executor(delay_s=2.0)
    call = stub_for(app).Execute.future(execute_request("cnn-small", tensor_input(held_out[0][0])), timeout=30)
    wait_for(lambda: app.service.admission.running == 1)
    call.cancel()
    wait_for(lambda: sink.observations)
    assert sink.observations[0].failed and sink.observations[0].error_code == "CANCELLED"
    assert backend.finished == 0  # recorded when the caller left, with 29 s of its deadline to go


def test_waiting_past_the_deadline_for_a_slot(slow_executor, stub_for, held_out):
    app, _, _ = slow_executor(delay_s=2.0, max_concurrency=1, max_queue=4)
    stub = stub_for(app)
    first = stub.Execute.future(execute_request("cnn-small", tensor_input(held_out[0][0])), timeout=10)
    wait_for(lambda: app.service.admission.running == 1)
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as err:
        stub.Execute(execute_request("cnn-small", tensor_input(held_out[0][1])), timeout=0.3)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started >= 0.25
    assert not first.done()  # it did not wait for the slot: the 2 s run holding it is still going
    assert first.result().prediction.label == held_out[1][0]


def test_a_full_queue_sheds_with_resource_exhausted(slow_executor, stub_for, held_out):
    app, _, sink = slow_executor(delay_s=1.5, max_concurrency=1, max_queue=1)
    stub = stub_for(app)
    running = stub.Execute.future(execute_request("cnn-small", tensor_input(held_out[0][0])), timeout=10)
    wait_for(lambda: app.service.admission.running == 1)
    queued = stub.Execute.future(execute_request("cnn-small", tensor_input(held_out[0][1])), timeout=10)
    wait_for(lambda: app.service.admission.waiting == 1)
    listed = stub.ListModels(executor_pb2.ListModelsRequest(), timeout=5)
    assert [m.queue_depth for m in listed.models] == [2]
    with pytest.raises(grpc.RpcError) as err:
        stub.Execute(execute_request("cnn-small", tensor_input(held_out[0][2])), timeout=10)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "--max-queue 1" in err.value.details()
    shed = status_details(err.value.trailing_metadata())
    assert shed.reason == "OVERLOADED" and shed.retry_delay_s is not None and shed.retry_delay_s > 0
    assert not running.done()  # shed at once, not after waiting: the 1.5 s run ahead of it is still going
    first, second = running.result(), queued.result()
    assert first.queue_ms < 500
    assert second.queue_ms > 1000  # it waited for the first run (1.5 s)
    assert app.service.admission.shed == 1
    assert [round(o.queue_ms, 6) for o in sink.observations] == [round(first.queue_ms, 6),
                                                                   round(second.queue_ms, 6)]


def test_user_executions_are_observed_and_probes_are_not(slow_executor, stub_for, held_out):
    app, _, sink = slow_executor(delay_s=0.0)
    stub = stub_for(app)
    reply = stub.Execute(execute_request("cnn-small", tensor_input(held_out[0][0]), request_id="user-1"), timeout=5)
    stub.Execute(execute_request("cnn-small", tensor_input(held_out[0][0]), probe=True, request_id="probe-1"),
                 timeout=5)
    assert len(sink.observations) == 1
    observed = sink.observations[0]
    assert (observed.name, observed.version, observed.request_id, observed.failed) == ("cnn-small", 1, "user-1",
                                                                                       False)
    assert observed.queue_ms == pytest.approx(reply.queue_ms)
    assert observed.execution_ms == pytest.approx(reply.execution_ms)
    assert abs(observed.observed_at - time.time()) < 5


def test_request_id_comes_from_metadata_when_the_message_has_none(slow_executor, stub_for, held_out):
    app, _, sink = slow_executor(delay_s=0.0)
    reply = stub_for(app).Execute(execute_request("cnn-small", tensor_input(held_out[0][0])), timeout=5,
                                  metadata=(("x-request-id", "from-metadata"),))
    assert reply.request_id == "from-metadata"
    assert sink.observations[-1].request_id == "from-metadata"
