"""The Selector's side of ExecuteStream (modipick.selector.execute_transport) against a real Executor
(embedded TensorFlow, digits pool) over real gRPC: concurrency on one stream, deadlines with cancel,
refusals as the unary call's errors, an Executor without ExecuteStream, one that goes away, one
that drains."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from executor_helpers import execute_request, run_calls, tensor_input
from fixtures_suite import free_port, wait_until
from structlog.testing import capture_logs

from modipick.selector.execute_transport import StreamExecute, UnaryExecute, transport_for
from modipick.selector.executors import ExecutorPool, PoolSettings
from modipick.v1 import common_pb2, executor_pb2

pytestmark = pytest.mark.tf


@pytest.fixture
def transport_to(transport_over):
    """transport_to(target, kind) -> a StreamExecute/UnaryExecute on the loop thread (closed after)."""

    def make(target: str, kind: type = StreamExecute, max_message_bytes: int = 16 * 1024 * 1024):
        return transport_over(target, lambda stub: kind(stub, target=target, max_message_bytes=max_message_bytes)
                              if kind is StreamExecute else kind(stub), max_message_bytes)

    return make


def test_concurrent_calls_share_one_stream_and_get_the_unary_answers(embedded_executor, loop_thread, transport_to,
                                                                     held_out):
    images, _ = held_out
    models = ["cnn-small", "cnn-large", "mlp-tiny"]
    requests = [execute_request(models[i % 3], tensor_input(images[i]), request_id=f"t-{i}") for i in range(9)]
    stream, unary = transport_to(embedded_executor.target), transport_to(embedded_executor.target, UnaryExecute)
    streamed = run_calls(loop_thread, stream, requests)
    opened = stream._stream
    again = run_calls(loop_thread, stream, requests[:3])
    assert stream._stream is opened is not None  # one stream served both rounds
    expected = run_calls(loop_thread, unary, requests)
    for got, want, second in zip(streamed, expected, again + [None] * 6):
        assert not isinstance(got, BaseException), got
        assert (got.request_id, got.model, got.prediction.label) == (want.request_id, want.model, want.prediction.label)
        if second is not None:
            assert second.prediction.label == got.prediction.label


def test_a_call_past_its_timeout_raises_deadline_exceeded_and_cancels_on_the_executor(
        slow_executor, loop_thread, transport_to, held_out):
    app, backend, sink = slow_executor(delay_s=2.0)
    stream = transport_to(app.target)
    started = time.monotonic()
    [outcome] = run_calls(loop_thread, stream, [execute_request("cnn-small", tensor_input(held_out[0][0]))], 0.3)
    elapsed = time.monotonic() - started
    assert isinstance(outcome, grpc.aio.AioRpcError) and outcome.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert 0.25 <= elapsed < 2.0  # at its timeout, before the 2 s run would have answered
    # the Executor heard the cancel (its own deadline was the same 300 ms, so either ends it)
    wait_until(lambda: sink.observations, timeout_s=5)
    assert sink.observations[0].error_code in ("CANCELLED", "DEADLINE_EXCEEDED")
    assert stream._stream is not None and not stream._stream.ended  # the stream carries on


def test_refusals_raise_the_status_a_unary_call_would(embedded_executor, loop_thread, transport_to, held_out):
    stream = transport_to(embedded_executor.target)
    missing, bad_shape = run_calls(loop_thread, stream, [
        execute_request("no-such-model", tensor_input(held_out[0][0])),
        execute_request("cnn-small", tensor_input(held_out[0][0][:3]))])
    assert missing.code() == grpc.StatusCode.NOT_FOUND and "no-such-model" in missing.details()
    assert bad_shape.code() == grpc.StatusCode.INVALID_ARGUMENT
    [zero] = run_calls(loop_thread, stream, [execute_request("cnn-small", tensor_input(held_out[0][0]))], 0.0)
    assert zero.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def test_an_input_over_the_message_limit_fails_alone_and_the_stream_goes_on(embedded_executor, loop_thread,
                                                                           transport_to, held_out):
    stream = transport_to(embedded_executor.target, max_message_bytes=64 * 1024)
    good = [execute_request("cnn-small", tensor_input(held_out[0][i])) for i in range(4)]
    huge = execute_request("cnn-small", common_pb2.Input(encoded_image=bytes(100 * 1024)))
    results = run_calls(loop_thread, stream, [good[0], huge, *good[1:]])
    assert isinstance(results[1], grpc.aio.AioRpcError)
    assert results[1].code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert [r.model.name for r in results[:1] + results[2:]] == ["cnn-small"] * 4
    opened = stream._stream
    assert opened is not None and not opened.ended
    assert not isinstance(run_calls(loop_thread, stream, good[:1])[0], BaseException)
    assert stream._stream is opened


def test_a_big_input_goes_unary_and_leaves_the_stream_to_small_ones(embedded_executor, loop_thread, transport_to,
                                                                    held_out):
    """Past HTTP/2's 64 KiB initial window a request would hold the calls behind it on the stream."""
    stream = transport_to(embedded_executor.target)
    big = execute_request("cnn-small", common_pb2.Input(encoded_image=bytes(80 * 1024)))  # undecodable
    [refused] = run_calls(loop_thread, stream, [big])
    assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT  # the Executor's own answer, by unary call
    assert stream._stream is None  # no stream was opened for it
    [served] = run_calls(loop_thread, stream, [execute_request("cnn-small", tensor_input(held_out[0][0]))])
    assert served.model.name == "cnn-small" and stream._stream is not None


def test_an_executor_without_execute_stream_gets_unary_calls(embedded_executor, loop_thread, transport_to, held_out):
    """An Executor from before ExecuteStream: only Execute is served (anything else UNIMPLEMENTED)."""
    service = embedded_executor.service

    async def start_old_executor():
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("modipick.v1.ExecutorService", {
            "Execute": grpc.unary_unary_rpc_method_handler(
                service.Execute, request_deserializer=executor_pb2.ExecuteRequest.FromString,
                response_serializer=executor_pb2.ExecuteResponse.SerializeToString)}),))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        return server, port

    server, port = loop_thread.run(start_old_executor())
    try:
        stream = transport_to(f"127.0.0.1:{port}")
        requests = [execute_request("cnn-small", tensor_input(held_out[0][i])) for i in range(3)]
        with capture_logs() as logs:
            first = run_calls(loop_thread, stream, requests)
            later = run_calls(loop_thread, stream, requests[:1])
        assert all(not isinstance(r, BaseException) for r in first + later), first + later
        assert stream._unary_only
        assert [e for e in logs if "no ExecuteStream" in e["event"]] != []
    finally:
        loop_thread.run(server.stop(0))


def test_calls_on_a_stream_whose_executor_goes_away_fail_unavailable_then_a_new_stream_serves(
        slow_executor, loop_thread, transport_to, held_out):
    address = f"127.0.0.1:{free_port()}"
    app, _, _ = slow_executor(delay_s=1.0, address=address, grace_s=0.0)
    stream = transport_to(address)
    request = execute_request("cnn-small", tensor_input(held_out[0][0]))

    async def call_then_kill():
        pending = asyncio.ensure_future(stream(request, 10.0))
        await asyncio.sleep(0.3)
        await app.server.server.stop(0)  # gone without draining: the stream is cut
        started = time.monotonic()
        try:
            await pending
        except grpc.aio.AioRpcError as exc:
            return exc, time.monotonic() - started
        return None, 0.0

    error, waited = loop_thread.run(call_then_kill())
    assert error is not None and error.code() == grpc.StatusCode.UNAVAILABLE, error
    assert waited < 2.0  # failed when the stream ended, not at its 10 s timeout
    slow_executor(delay_s=0.0, address=address)  # back on the same address
    # once the channel has reconnected (its backoff), the next call opens a new stream and is served
    served = wait_until(lambda: [r for r in run_calls(loop_thread, stream, [request])
                                 if not isinstance(r, BaseException)], timeout_s=15, interval_s=0.2)
    assert served[0].model.name == "cnn-small"


def test_a_graceful_stop_answers_the_calls_in_flight(slow_executor, loop_thread, transport_to, held_out):
    app, _, _ = slow_executor(delay_s=0.5, grace_s=5.0)
    stream = transport_to(app.target)
    request = execute_request("cnn-small", tensor_input(held_out[0][0]))

    async def call_then_stop():
        pending = asyncio.ensure_future(stream(request, 10.0))
        await asyncio.sleep(0.2)
        began = time.monotonic()
        stopping = asyncio.ensure_future(app.server.stop())  # drains the stream, then refuses new calls
        reply = await pending
        await stopping
        return reply, time.monotonic() - began

    reply, stop_took = loop_thread.run(call_then_stop())
    assert reply.prediction.label >= 0 and reply.model.name == "cnn-small"
    # the drained stream ended with its last answer: the stop did not sit out its 5 s grace for it
    assert stop_took < 5.0
    [late] = run_calls(loop_thread, stream, [request], 2.0)
    assert isinstance(late, grpc.aio.AioRpcError) and late.code() == grpc.StatusCode.UNAVAILABLE


def test_the_pool_picks_each_replicas_transport_by_name_and_target(loop_thread):
    targets = ["127.0.0.1:1", "[::1]:2", "unix:///tmp/executor.sock", "executor:50052",
               "dns:///executor-headless:50052", "ipv4:10.0.0.1:1,10.0.0.2:1"]

    async def pools():
        made = [ExecutorPool(targets, list, settings=PoolSettings(transport=t)) for t in ("auto", "stream", "unary")]
        kinds = [[r.execute.name for r in p.replicas] for p in made]
        for p in made:
            await p.close()
        return kinds

    auto, stream, unary = loop_thread.run(pools())
    # a name may resolve to many Executors that the channel balances unary calls over; one stream
    # would pin every execution to one of them
    assert auto == ["stream", "stream", "stream", "unary", "unary", "unary"]
    assert stream == ["stream"] * len(targets) and unary == ["unary"] * len(targets)
    assert transport_for("auto", "127.0.0.1:1", traced=True) == "unary"  # spans live on unary calls
    with pytest.raises(ValueError, match="transport"):
        ExecutorPool(["127.0.0.1:1"], list, settings=PoolSettings(transport="pigeon"))


def test_the_selector_flag_and_its_environment_variable_choose_the_transport(capsys):
    from modipick.selector.__main__ import parse_settings

    assert parse_settings([], environ={})[0].executor_pool.transport == "auto"
    assert parse_settings(["--executor-transport", "unary"], environ={})[0].executor_pool.transport == "unary"
    chosen = parse_settings([], environ={"MODIPICK_EXECUTOR_TRANSPORT": "stream"})[0].executor_pool.transport
    assert chosen == "stream"
    with pytest.raises(SystemExit) as exit_:
        parse_settings(["--executor-transport", "pigeon"], environ={})
    assert exit_.value.code == 2 and "--executor-transport" in capsys.readouterr().err


def test_a_broken_stream_counts_as_one_failure_of_its_replica(slow_executor, loop_thread, held_out):
    """Every call waiting on the stream fails at once; the replica's backoff must not grow with
    how many there were (it would stay ejected long after the Executor is back)."""
    app, _, _ = slow_executor(delay_s=1.0, max_concurrency=4, grace_s=0.0)
    request = execute_request("cnn-small", tensor_input(held_out[0][0]))

    async def three_calls_then_kill():
        pool = ExecutorPool([app.target], list, settings=PoolSettings(transport="stream"))
        try:
            calls = [asyncio.ensure_future(pool.Execute(request, timeout=10.0)) for _ in range(3)]
            await asyncio.sleep(0.3)
            await app.server.server.stop(0)
            results = await asyncio.gather(*calls, return_exceptions=True)
            replica = pool.replicas[0]
            return [r.code() for r in results], replica.failures, replica.ejected_until - time.monotonic()
        finally:
            await pool.close()

    codes, failures, ejected_for = loop_thread.run(three_calls_then_kill())
    assert codes == [grpc.StatusCode.UNAVAILABLE] * 3
    assert failures == 1 and 0 < ejected_for <= PoolSettings().eject_base_s


@pytest.mark.parametrize("mean_ms,ejected", [(900.0, False), (100.0, True)])
def test_a_deadline_miss_ejects_the_replica_only_when_the_attempt_had_room(slow_executor, loop_thread, held_out,
                                                                          mean_ms, ejected):
    """The same 1.5 s run missing a 1 s budget: the budget's fault when the model was expected to take
    900 ms, the replica's (hung, overloaded) when it was expected to take 100 ms."""
    from modipick.core import Candidate

    app, _, _ = slow_executor(delay_s=1.5, max_concurrency=4)
    request = execute_request("cnn-small", tensor_input(held_out[0][0]), version=1)  # as the Selector sends it
    profiles = [Candidate("cnn-small", 1, 96.0, mean_ms, 1.0)]

    async def one_call():
        pool = ExecutorPool([app.target], lambda: profiles, settings=PoolSettings(transport="unary"))
        try:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await pool.Execute(request, timeout=1.0)
            replica = pool.replicas[0]
            return err.value.code(), replica.failures, replica.ejected(time.monotonic())
        finally:
            await pool.close()

    code, failures, is_ejected = loop_thread.run(one_call())
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert is_ejected is ejected and (failures >= 1) is ejected


def test_when_every_attempt_fails_the_pool_raises_the_last_status_not_an_internal_error(loop_thread):
    """Three replicas that refuse connections: three attempts, then UNAVAILABLE naming each one
    (the loop used to run out after a third failure that still planned a retry: UNKNOWN)."""
    from modipick.core import Candidate

    targets = [f"127.0.0.1:{free_port()}" for _ in range(4)]
    fits = [Candidate("cnn-small", 1, 96.0, 1.0, 0.1)]

    async def attempt_all():
        pool = ExecutorPool(targets, lambda: fits, settings=PoolSettings(transport="unary"))
        try:
            request = executor_pb2.ExecuteRequest(model=common_pb2.ModelRef(name="cnn-small", version=1))
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await pool.Execute(request, timeout=5.0)
            return err.value
        finally:
            await pool.close()

    error = loop_thread.run(attempt_all())
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert "3 attempts made" in error.details() and error.details().count("UNAVAILABLE") == 3


def test_auto_keeps_unary_calls_to_a_target_that_balances_over_several_executors(slow_executor, loop_thread,
                                                                                     held_out):
    """One target naming two Executors: unary calls are spread over both by the channel; one
    stream would carry every execution to the same one."""
    (first, first_backend, _), (second, second_backend, _) = slow_executor(0.0), slow_executor(0.0)
    target = f"ipv4:{first.target},{second.target}"
    request = execute_request("cnn-small", tensor_input(held_out[0][0]))

    def served_by(transport: str) -> tuple[int, int]:
        before = first_backend.finished, second_backend.finished

        async def calls():
            pool = ExecutorPool([target], list, settings=PoolSettings(transport=transport))
            try:
                for _ in range(20):
                    await pool.Execute(request, timeout=10.0)
            finally:
                await pool.close()

        loop_thread.run(calls())
        return first_backend.finished - before[0], second_backend.finished - before[1]

    spread = served_by("auto")
    assert sum(spread) == 20 and min(spread) > 0, spread
    pinned = served_by("stream")
    assert sum(pinned) == 20 and min(pinned) == 0, pinned
