"""The Selector's Executor pool (modipick.selector.executors) against real Executors (embedded
TensorFlow, digits pool) over real gRPC, on TCP and on a Unix socket: what a run returns, how each
Executor answer becomes one Failure, deadlines, retries, ejection, balancing and shutdown."""

from __future__ import annotations

import asyncio
import os
import socket
import time

import pytest
from executor_support import start_app, tensor_input
from fixtures_suite import free_port, wait_until

from modipick.core import Candidate
from modipick.runtime.server import SocketInUse
from modipick.selector.execution import ExecutionFailed, Failure
from modipick.selector.executors import ExecutorPool, PoolSettings
from modipick.v1 import common_pb2

pytestmark = pytest.mark.tf

CNN_SMALL = Candidate("cnn-small", 1, 96.0, 1.0, 0.1)


def run_in_pool(loop_thread, targets, work, candidates=(CNN_SMALL,), settings=PoolSettings()):
    """`await work(pool)` with a fresh pool over `targets` on the loop thread; the pool closed after."""
    async def go():
        pool = ExecutorPool(targets, lambda: list(candidates), settings=settings)
        try:
            return await work(pool)
        finally:
            await pool.close()

    return loop_thread.run(go())


async def failure_of(pool: ExecutorPool, *args, **kwargs) -> ExecutionFailed:
    try:
        await pool.run(*args, **kwargs)
    except ExecutionFailed as exc:
        return exc
    raise AssertionError("the run did not fail")


@pytest.fixture(scope="module")
def unix_executor(loop_thread, digits_pool, tmp_path_factory):
    """The embedded digits pool serving gRPC on TCP and on a Unix socket."""
    from modipick.executor.app import ExecutorSettings

    path = str(tmp_path_factory.mktemp("sock") / "executor.sock")
    app = start_app(loop_thread, ExecutorSettings(model_base=str(digits_pool), max_concurrency=2, max_queue=8,
                                                  grace_s=0.5, unix_socket=path))
    yield app
    loop_thread.run(app.stop(0))


def test_a_unix_target_runs_the_same_executions_as_tcp(unix_executor, loop_thread, held_out):
    images, _ = held_out
    path = unix_executor.settings.unix_socket
    assert socket.socket(socket.AF_UNIX).connect_ex(path) == 0

    async def three(pool):
        await pool.poll_once()  # ListModels over the same target
        runs = [pool.run(CNN_SMALL, tensor_input(images[i]), 10.0, request_id=f"u-{i}") for i in range(3)]
        return await asyncio.gather(*runs), pool.replicas[0].reported_at

    over_unix, polled_at = run_in_pool(loop_thread, [f"unix:{path}"], three)
    over_tcp, _ = run_in_pool(loop_thread, [unix_executor.target], three)
    assert polled_at > 0
    assert [(e.model.name, e.prediction.label) for e in over_unix] == [(e.model.name, e.prediction.label)
                                                                       for e in over_tcp]
    assert all(e.replica == f"unix:{path}" and e.attempts == 1 and e.execution_ms > 0 for e in over_unix)


def test_a_model_the_replica_lacks_is_retried_with_the_fastest_and_bad_input_is_final(embedded_executor, loop_thread,
                                                                                      held_out):
    image = tensor_input(held_out[0][0])

    async def both(pool):
        rescued = await pool.run(Candidate("no-such-model", 1, 90.0, 1.0, 0.1), image, 5.0)
        bad_shape = await failure_of(pool, CNN_SMALL, tensor_input(held_out[0][0][:3]), 5.0)
        return rescued, bad_shape, pool.rescued

    rescued, bad_shape, rescued_count = run_in_pool(loop_thread, [embedded_executor.target], both)
    assert rescued.model.name == "cnn-small" and rescued.attempts == 2 and rescued_count == 1
    assert bad_shape.failure is Failure.INVALID_INPUT and bad_shape.attempts == 1  # the request's fault: no retry
    assert "INVALID_ARGUMENT" in bad_shape.detail


def test_a_run_past_its_time_fails_timed_out_and_the_executor_stops_waiting(slow_executor, loop_thread, held_out):
    app, _, sink = slow_executor(delay_s=2.0)
    started = time.monotonic()
    failed = run_in_pool(loop_thread, [app.target],
                         lambda pool: failure_of(pool, CNN_SMALL, tensor_input(held_out[0][0]), 0.3))
    assert failed.failure is Failure.TIMED_OUT
    assert 0.25 <= time.monotonic() - started < 1.5
    wait_until(lambda: sink.observations, timeout_s=5)
    assert sink.observations[0].error_code in ("CANCELLED", "DEADLINE_EXCEEDED")


def test_calls_cut_together_count_as_one_failure_of_their_replica(slow_executor, loop_thread, held_out):
    """Every call in flight fails at once when the Executor goes away; the replica's backoff must
    not grow with how many there were (it would stay ejected long after the Executor is back)."""
    app, _, _ = slow_executor(delay_s=1.0, max_concurrency=4, grace_s=0.0)
    image = tensor_input(held_out[0][0])

    async def three_then_kill(pool):
        runs = [asyncio.ensure_future(failure_of(pool, CNN_SMALL, image, 10.0)) for _ in range(3)]
        await asyncio.sleep(0.3)
        await app.server.server.stop(0)
        failures = await asyncio.gather(*runs)
        replica = pool.replicas[0]
        return [f.failure for f in failures], replica.failures, replica.ejected_until - time.monotonic()

    failures, count, ejected_for = run_in_pool(loop_thread, [app.target], three_then_kill)
    assert failures == [Failure.UNAVAILABLE] * 3
    assert count == 1 and 0 < ejected_for <= PoolSettings().eject_base_s


@pytest.mark.parametrize("mean_ms,ejected", [(900.0, False), (100.0, True)])
def test_a_deadline_miss_ejects_the_replica_only_when_the_attempt_had_room(slow_executor, loop_thread, held_out,
                                                                          mean_ms, ejected):
    """The same 1.5 s run missing a 1 s budget: the budget's fault when the model was expected to take
    900 ms, the replica's (hung, overloaded) when it was expected to take 100 ms."""
    app, _, _ = slow_executor(delay_s=1.5, max_concurrency=4)
    model = Candidate("cnn-small", 1, 96.0, mean_ms, 1.0)

    async def one(pool):
        failed = await failure_of(pool, model, tensor_input(held_out[0][0]), 1.0)
        replica = pool.replicas[0]
        return failed.failure, replica.failures, replica.ejected(time.monotonic())

    failure, failures, is_ejected = run_in_pool(loop_thread, [app.target], one, candidates=(model,))
    assert failure is Failure.TIMED_OUT
    assert is_ejected is ejected and (failures >= 1) is ejected


def test_when_every_attempt_fails_the_run_names_each_one(loop_thread):
    """Replicas that refuse connections: three attempts, then UNAVAILABLE naming each one."""
    targets = [f"127.0.0.1:{free_port()}" for _ in range(4)]
    failed = run_in_pool(loop_thread, targets, lambda pool: failure_of(pool, CNN_SMALL, common_pb2.Input(), 5.0))
    assert failed.failure is Failure.UNAVAILABLE and failed.attempts == 3
    assert "3 attempts made" in failed.detail and failed.detail.count("UNAVAILABLE") == 3


def test_a_failed_replica_is_retried_on_another_within_the_budget(slow_executor, loop_thread, held_out):
    app, _, _ = slow_executor(delay_s=0.0)
    dead = f"127.0.0.1:{free_port()}"

    async def from_the_dead_one(pool):
        return await pool.run(CNN_SMALL, tensor_input(held_out[0][0]), 5.0, replica=pool.replicas[0])

    execution = run_in_pool(loop_thread, [dead, app.target], from_the_dead_one)
    assert execution.attempts == 2 and execution.replica == app.target and execution.model.name == "cnn-small"


def test_one_target_naming_two_executors_spreads_calls_over_both(slow_executor, loop_thread, held_out):
    (first, first_backend, _), (second, second_backend, _) = slow_executor(0.0), slow_executor(0.0)
    image = tensor_input(held_out[0][0])

    async def twenty(pool):
        for _ in range(20):
            await pool.run(CNN_SMALL, image, 10.0)

    run_in_pool(loop_thread, [f"ipv4:{first.target},{second.target}"], twenty)
    spread = first_backend.finished, second_backend.finished
    assert sum(spread) == 20 and min(spread) > 0, spread


def test_a_graceful_stop_answers_the_runs_in_flight(slow_executor, loop_thread, held_out):
    app, _, _ = slow_executor(delay_s=0.5, grace_s=5.0)
    image = tensor_input(held_out[0][0])

    async def run_then_stop(pool):
        pending = asyncio.ensure_future(pool.run(CNN_SMALL, image, 10.0))
        await asyncio.sleep(0.2)
        began = time.monotonic()
        stopping = asyncio.ensure_future(app.server.stop())
        execution = await pending
        await stopping
        return execution, time.monotonic() - began, await failure_of(pool, CNN_SMALL, image, 2.0)

    execution, stop_took, late = run_in_pool(loop_thread, [app.target], run_then_stop)
    assert execution.prediction.label >= 0 and execution.model.name == "cnn-small"
    assert stop_took < 2.5  # the stop waited for the run in flight, not for its whole grace
    assert late.failure is Failure.UNAVAILABLE


def test_a_unix_socket_in_use_is_refused_and_a_stale_one_is_replaced(loop_thread, digits_pool, tmp_path,
                                                                     unix_executor):
    from modipick.executor.app import ExecutorSettings

    def start(path: str):
        return start_app(loop_thread, ExecutorSettings(model_base=str(digits_pool), grace_s=0.1, unix_socket=path))

    with pytest.raises(SocketInUse, match="another process is listening"):
        start(unix_executor.settings.unix_socket)
    not_a_socket = tmp_path / "file.sock"
    not_a_socket.write_text("mine")
    with pytest.raises(SocketInUse, match="not a socket"):
        start(str(not_a_socket))
    assert not_a_socket.read_text() == "mine"
    stale = str(tmp_path / "stale.sock")
    left_behind = socket.socket(socket.AF_UNIX)
    left_behind.bind(stale)  # bound, never listening: what a killed process leaves
    left_behind.close()
    fresh = start(stale)
    try:
        assert socket.socket(socket.AF_UNIX).connect_ex(stale) == 0
    finally:
        loop_thread.run(fresh.stop(0))
    assert not os.path.exists(stale)  # removed on stop


def test_the_flags_name_the_unix_socket(capsys, tmp_path):
    from modipick.executor.__main__ import parse_settings as executor_settings
    from modipick.selector.__main__ import parse_settings as selector_settings

    path = str(tmp_path / "e.sock")
    assert executor_settings(["--model-base", "/m", "--listen-unix", path], environ={})[0].unix_socket == path
    assert executor_settings(["--model-base", "/m"], environ={"MODIPICK_LISTEN_UNIX": path})[0].unix_socket == path
    assert selector_settings(["--executor-target", f"unix:{path}"], environ={})[0].executor_target == f"unix:{path}"
    with pytest.raises(SystemExit) as exit_:
        executor_settings(["--model-base", "/m", "--listen-unix", "/" + "s" * 120], environ={})
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--listen-unix" in err and "at most 107 bytes" in err, err
