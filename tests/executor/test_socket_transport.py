"""The co-located path: the Executor's `--execute-socket` (modipick.executor.local_socket) and the
Selector's `--executor-socket` transport (modipick.selector.socket_transport), with a real Executor
(embedded TensorFlow, digits pool) on a real Unix socket and its gRPC server beside it."""

from __future__ import annotations

import asyncio
import os
import socket
import time

import grpc
import pytest
from executor_helpers import RecordingSink, SlowBackend, execute_request, run_calls, start_app, tensor_input
from fixtures_suite import wait_until
from structlog.testing import capture_logs

from modipick.runtime.channels import aio_channel
from modipick.runtime.frames import MAGIC
from modipick.selector.execute_transport import UnaryExecute, transport_for
from modipick.selector.executors import ExecutorPool, PoolSettings
from modipick.selector.socket_transport import SocketExecute
from modipick.v1 import executor_pb2_grpc

pytestmark = pytest.mark.tf


@pytest.fixture
def socket_executor(loop_thread, digits_pool, tmp_path):
    """socket_executor(delay_s=None) -> (app, sink): the embedded digits pool (cnn-small slowed by
    delay_s when given) serving gRPC and a Unix socket."""
    from modipick.executor.app import ExecutorSettings
    from modipick.executor.backends.embedded import EmbeddedBackend

    apps = []

    def make(delay_s: float | None = None, *, path: str | None = None, grace_s: float = 0.5,
             max_concurrency: int = 2):
        backend = (None if delay_s is None
                   else SlowBackend(EmbeddedBackend(digits_pool, models=["cnn-small"]), delay_s))
        sink = RecordingSink()
        settings = ExecutorSettings(model_base=str(digits_pool), max_concurrency=max_concurrency, max_queue=8,
                                    grace_s=grace_s, execute_socket=path or str(tmp_path / f"exec-{len(apps)}.sock"))
        app = start_app(loop_thread, settings, **({"backend": backend} if backend else {}), sink=sink)
        apps.append(app)
        return app, sink

    yield make
    for app in apps:
        loop_thread.run(app.stop(0))


@pytest.fixture
def socket_transport(transport_over):
    """socket_transport(target, path) -> a SocketExecute on the loop thread (closed after)."""

    def make(target: str, path: str, **kwargs) -> SocketExecute:
        return transport_over(target, lambda stub: SocketExecute(stub, path, target=target, **kwargs))

    return make


def test_calls_over_the_socket_get_the_answers_unary_calls_get(socket_executor, socket_transport, loop_thread,
                                                               held_out):
    app, sink = socket_executor()
    images, _ = held_out
    models = ["cnn-small", "cnn-large", "mlp-tiny"]
    requests = [execute_request(models[i % 3], tensor_input(images[i]), request_id=f"s-{i}") for i in range(9)]
    transport = socket_transport(app.target, app.local.path)
    over_socket = run_calls(loop_thread, transport, requests)
    conduit = transport._stream.conduit
    again = run_calls(loop_thread, transport, requests[:2])
    assert transport._stream.conduit is conduit  # one connection served both rounds

    async def unary_all():
        async with aio_channel(app.target) as channel:
            unary = UnaryExecute(executor_pb2_grpc.ExecutorServiceStub(channel))
            return await asyncio.gather(*(unary(r, 10.0) for r in requests))

    expected = loop_thread.run(unary_all())
    for got, want in zip(over_socket, expected):
        assert not isinstance(got, BaseException), got
        assert (got.request_id, got.model, got.prediction.label) == (want.request_id, want.model, want.prediction.label)
    assert [r.prediction.label for r in again] == [r.prediction.label for r in over_socket[:2]]
    # every execution over the socket was observed like any other (request ids carried in the message)
    seen = {o.request_id for o in sink.observations}
    assert {f"s-{i}" for i in range(9)} <= seen


def test_a_call_past_its_timeout_is_cancelled_on_the_executor_and_refusals_keep_their_status(
        socket_executor, socket_transport, loop_thread, held_out):
    app, sink = socket_executor(delay_s=2.0)
    transport = socket_transport(app.target, app.local.path)
    started = time.monotonic()
    [late] = run_calls(loop_thread, transport, [execute_request("cnn-small", tensor_input(held_out[0][0]))], 0.3)
    assert isinstance(late, grpc.aio.AioRpcError) and late.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert 0.25 <= time.monotonic() - started < 2.0  # at its timeout, before the 2 s run would have answered
    wait_until(lambda: sink.observations, timeout_s=5)
    assert sink.observations[0].error_code in ("CANCELLED", "DEADLINE_EXCEEDED")
    [missing] = run_calls(loop_thread, transport, [execute_request("no-such-model", tensor_input(held_out[0][0]))])
    assert missing.code() == grpc.StatusCode.NOT_FOUND and "no-such-model" in missing.details()
    assert transport._stream is not None and not transport._stream.ended  # the connection carries on


def test_without_a_socket_calls_take_the_grpc_stream_and_the_socket_is_used_once_it_appears(
        socket_executor, socket_transport, loop_thread, held_out, tmp_path):
    app, _ = socket_executor()
    later_path = str(tmp_path / "later.sock")
    transport = socket_transport(app.target, later_path, retry_s=0.2)
    request = execute_request("cnn-small", tensor_input(held_out[0][0]))
    with capture_logs() as logs:
        first = run_calls(loop_thread, transport, [request] * 3)
        second = run_calls(loop_thread, transport, [request])
    assert all(r.model.name == "cnn-small" for r in first + second), first + second
    warned = [e for e in logs if e["log_level"] == "warning" and "socket unavailable" in e["event"]]
    assert len(warned) == 1 and warned[0]["path"] == later_path
    assert transport._via_grpc._stream is not None  # they went over the gRPC stream

    async def serve_socket_too():
        from modipick.executor.local_socket import LocalExecuteSocket

        local = LocalExecuteSocket(later_path, app.service, max_message_bytes=4 * 1024 * 1024)
        await local.start()
        return local

    local = loop_thread.run(serve_socket_too())
    try:
        time.sleep(0.3)  # past retry_s
        [served] = run_calls(loop_thread, transport, [request])
        assert served.model.name == "cnn-small"
        assert transport._stream is not None and not transport._stream.ended  # the socket carried it
    finally:
        loop_thread.run(local.stop(0))
    assert not os.path.exists(later_path)


def test_calls_in_flight_fail_unavailable_when_the_executor_goes_away_and_a_graceful_stop_answers_them(
        socket_executor, socket_transport, loop_thread, held_out):
    request = execute_request("cnn-small", tensor_input(held_out[0][0]))
    graceful, _ = socket_executor(delay_s=0.5, grace_s=5.0)
    transport = socket_transport(graceful.target, graceful.local.path)

    async def call_then_stop(app, stop):
        pending = asyncio.ensure_future(transport(request, 10.0))
        await asyncio.sleep(0.2)
        began = time.monotonic()
        await stop(app)
        try:
            return await pending, time.monotonic() - began
        except grpc.aio.AioRpcError as exc:
            return exc, time.monotonic() - began

    reply, took = loop_thread.run(call_then_stop(graceful, lambda app: app.stop()))
    assert reply.model.name == "cnn-small" and took < 5.0  # answered, and the stop did not sit out its 5 s grace
    assert not os.path.exists(graceful.local.path)  # the socket file went with it

    cut, _ = socket_executor(delay_s=1.0)
    transport = socket_transport(cut.target, cut.local.path)

    async def cut_sessions(app):
        for task in list(app.local._sessions):
            task.cancel()

    error, waited = loop_thread.run(call_then_stop(cut, cut_sessions))
    assert isinstance(error, grpc.aio.AioRpcError) and error.code() == grpc.StatusCode.UNAVAILABLE, error
    assert waited < 1.0  # failed when the connection broke, not at its 10 s timeout


def test_a_peer_that_breaks_the_framing_is_closed_alone(socket_executor, socket_transport, loop_thread, held_out):
    app, _ = socket_executor()
    transport = socket_transport(app.target, app.local.path)
    request = execute_request("cnn-small", tensor_input(held_out[0][0]))
    with capture_logs() as logs:
        with socket.socket(socket.AF_UNIX) as wrong:
            wrong.connect(app.local.path)
            # a gRPC client at the wrong door: HTTP/2's preface and an empty SETTINGS frame
            wrong.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0]))
            wrong.settimeout(5)
            assert wrong.recv(64) == b""  # closed without an answer
        with socket.socket(socket.AF_UNIX) as oversized:
            oversized.connect(app.local.path)
            oversized.sendall(MAGIC + (1 << 30).to_bytes(4, "big"))
            oversized.settimeout(5)
            assert oversized.recv(64) == MAGIC and oversized.recv(64) == b""
        with socket.socket(socket.AF_UNIX) as garbled:
            garbled.connect(app.local.path)
            garbled.sendall(MAGIC + (5).to_bytes(4, "big") + b"\xff\xff\xff\xff\xff")
            garbled.settimeout(5)
            assert garbled.recv(64) == MAGIC and garbled.recv(64) == b""
        [served] = run_calls(loop_thread, transport, [request])
    assert served.model.name == "cnn-small"
    reasons = [e["reason"] for e in logs if e["event"] == "execute socket session closed"]
    assert any("undecodable ExecuteStreamRequest" in r for r in reasons), reasons
    assert any("not a modipick execute socket" in r for r in reasons), reasons
    assert any("over the" in r and "message limit" in r for r in reasons), reasons


def test_a_socket_path_in_use_is_refused_and_a_stale_one_is_replaced(socket_executor, loop_thread, tmp_path):
    from modipick.executor.local_socket import SocketInUse

    app, _ = socket_executor()
    with pytest.raises(SocketInUse, match="another process is listening"):
        socket_executor(path=app.local.path)
    not_a_socket = tmp_path / "file.sock"
    not_a_socket.write_text("mine")
    with pytest.raises(SocketInUse, match="not a socket"):
        socket_executor(path=str(not_a_socket))
    assert not_a_socket.read_text() == "mine"
    stale = str(tmp_path / "stale.sock")
    left_behind = socket.socket(socket.AF_UNIX)
    left_behind.bind(stale)  # bound, never listening: what a killed process leaves
    left_behind.close()
    fresh, _ = socket_executor(path=stale)
    with socket.socket(socket.AF_UNIX) as probe:
        probe.connect(stale)
        probe.sendall(MAGIC)
        probe.settimeout(5)
        assert probe.recv(64) == MAGIC
    assert fresh.local.path == stale


def test_the_pool_uses_the_socket_for_its_one_target_unless_unary_or_traced(loop_thread, tmp_path):
    path = str(tmp_path / "x.sock")

    async def kinds(transport: str) -> list[str]:
        pool = ExecutorPool(["executor:50052"], list, settings=PoolSettings(transport=transport, socket_path=path))
        try:
            return [r.execute.name for r in pool.replicas]
        finally:
            await pool.close()

    assert loop_thread.run(kinds("auto")) == ["socket"] and loop_thread.run(kinds("stream")) == ["socket"]
    assert loop_thread.run(kinds("unary")) == ["unary"]
    assert transport_for("auto", "127.0.0.1:1", traced=True, socket=True) == "unary"  # spans live on unary calls
    with pytest.raises(ValueError, match="one co-located Executor"):
        ExecutorPool(["a:1", "b:1"], list, settings=PoolSettings(socket_path=path))


def test_the_flags_name_what_is_wrong(capsys, tmp_path):
    from modipick.executor.__main__ import parse_settings as executor_settings
    from modipick.selector.__main__ import parse_settings as selector_settings

    path = str(tmp_path / "e.sock")
    assert executor_settings(["--model-base", "/m", "--execute-socket", path], environ={})[0].execute_socket == path
    assert executor_settings(["--model-base", "/m"], environ={"MODIPICK_EXECUTE_SOCKET": path})[0].execute_socket == path
    assert selector_settings(["--executor-socket", path], environ={})[0].executor_pool.socket_path == path
    for parse, argv, words in [
            (executor_settings, ["--model-base", "/m", "--execute-socket", "/" + "s" * 120], "at most 107 bytes"),
            (selector_settings, ["--executor-socket", path, "--executor-target", "a:1,b:1"], "names 2"),
            (selector_settings, ["--executor-socket", path, "--executor-transport", "unary"], "unary")]:
        with pytest.raises(SystemExit) as exit_:
            parse(argv, environ={})
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert "socket" in err and words in err, err
