"""The ProfilerReporter against a real in-test ProfilerService over gRPC: batched, complete,
never blocking, bounded when the Profiler is away, delivering once it is back."""

from __future__ import annotations

import asyncio
import time

import pytest
from executor_support import execute_request, start_app, tensor_input
from fixtures_redis import free_port

from modipick.executor.app import ExecutorSettings
from modipick.executor.reporter import ExecutionObservation, ProfilerReporter
from modipick.runtime.channels import aio_channel
from modipick.runtime.server import ServerOptions, start_server
from modipick.v1 import profiler_pb2, profiler_pb2_grpc


class RecordingProfiler(profiler_pb2_grpc.ProfilerServiceServicer):
    """Records every RecordObservations stream it receives, batch by batch."""

    def __init__(self) -> None:
        self.streams: list[list[profiler_pb2.RecordObservationsRequest]] = []

    async def RecordObservations(self, request_iterator, context):
        batches = [batch async for batch in request_iterator]
        self.streams.append(batches)
        count = sum(len(b.observations) for b in batches)
        return profiler_pb2.RecordObservationsResponse(accepted=count)

    @property
    def batches(self) -> list[profiler_pb2.RecordObservationsRequest]:
        return [batch for stream in self.streams for batch in stream]

    @property
    def observations(self) -> list[profiler_pb2.Observation]:
        return [o for batch in self.batches for o in batch.observations]


async def start_profiler(address: str = "127.0.0.1:0"):
    servicer = RecordingProfiler()
    server = await start_server([(profiler_pb2_grpc.add_ProfilerServiceServicer_to_server, servicer)],
                                ["modipick.v1.ProfilerService"], ServerOptions(address=address, grace_s=0.2))
    return servicer, server


async def eventually(predicate, timeout_s: float = 5.0) -> None:
    end = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < end, "condition not reached"
        await asyncio.sleep(0.01)


def observation(i: int) -> ExecutionObservation:
    return ExecutionObservation(name=f"m{i % 3}", version=1 + i % 2, queue_ms=float(i), execution_ms=2.5 * i,
                                observed_at=1_700_000_000.25 + i, request_id=f"r{i}", failed=i == 7)


def test_observations_arrive_batched_and_complete():
    async def scenario():
        profiler, server = await start_profiler()
        channel = aio_channel(server.target)
        reporter = ProfilerReporter(channel, batch_size=10, flush_interval_s=0.02)
        reporter.start()
        for i in range(35):
            reporter.submit(observation(i))
        await eventually(lambda: len(profiler.observations) == 35)
        got = profiler.observations
        assert [o.request_id for o in got] == [f"r{i}" for i in range(35)]  # order kept, nothing twice
        assert all(len(b.observations) <= 10 for b in profiler.batches)
        assert len(profiler.batches) >= 4
        seven = got[7]
        assert (seven.model.name, seven.model.version, seven.queue_ms, seven.execution_ms, seven.failed,
                seven.probe) == ("m1", 2, 7.0, 17.5, True, False)
        assert seven.observed_at.ToNanoseconds() == int((1_700_000_000.25 + 7) * 1e9)
        await eventually(lambda: reporter.stats.sent == 35)  # the last reply may still be on its way
        stats = reporter.stats
        assert (stats.submitted, stats.sent, stats.accepted, stats.dropped) == (35, 35, 35, 0)
        await reporter.close()
        await channel.close()
        await server.stop(0)

    asyncio.run(scenario())


def test_submit_never_waits_even_when_the_profiler_is_away():
    async def scenario():
        channel = aio_channel(f"127.0.0.1:{free_port()}")
        reporter = ProfilerReporter(channel, batch_size=50, max_buffer=1_000, flush_interval_s=0.01)
        reporter.start()
        started = time.perf_counter()
        for i in range(5_000):
            reporter.submit(observation(i))
        elapsed = time.perf_counter() - started
        # one submit waiting for the unreachable Profiler would wait out a send (its timeout)
        assert elapsed < reporter.send_timeout_s, f"5000 submits took {elapsed:.3f} s"
        await eventually(lambda: reporter.stats.failed_sends >= 1)
        stats = reporter.stats
        assert stats.buffered <= 1_000
        assert stats.dropped >= 4_000  # bounded: beyond the buffer, dropped and counted
        assert stats.submitted == 5_000
        await reporter.close(timeout_s=0.2)
        assert reporter.stats.dropped == 5_000 and reporter.stats.sent == 0
        await channel.close()

    asyncio.run(scenario())


def test_observations_wait_for_a_profiler_that_comes_late():
    async def scenario():
        port = free_port()
        channel = aio_channel(f"127.0.0.1:{port}")
        reporter = ProfilerReporter(channel, batch_size=5, flush_interval_s=0.01, max_backoff_s=0.2)
        reporter.start()
        for i in range(12):
            reporter.submit(observation(i))
        await eventually(lambda: reporter.stats.failed_sends >= 1)
        profiler, server = await start_profiler(f"127.0.0.1:{port}")
        await eventually(lambda: len(profiler.observations) == 12, timeout_s=15)
        assert sorted(o.request_id for o in profiler.observations) == sorted(f"r{i}" for i in range(12))
        assert reporter.stats.dropped == 0
        await reporter.close()
        await channel.close()
        await server.stop(0)

    asyncio.run(scenario())


@pytest.mark.tf
def test_executor_reports_user_executions_to_the_profiler(loop_thread, digits_pool, stub_for, held_out):
    profiler, server = loop_thread.run(start_profiler())
    app = start_app(loop_thread, ExecutorSettings(model_base=str(digits_pool), profiler_target=server.target,
                                                  grace_s=0.2))
    try:
        stub = stub_for(app)
        replies = [stub.Execute(execute_request(name, tensor_input(held_out[0][i]), request_id=f"u{i}"), timeout=10)
                   for i, name in enumerate(["cnn-small", "mlp-tiny", "cnn-large"])]
        stub.Execute(execute_request("cnn-small", tensor_input(held_out[0][0]), probe=True, request_id="p"),
                     timeout=10)
        loop_thread.run(eventually(lambda: len(profiler.observations) == 3))
        time.sleep(0.2)  # a probe observation would have arrived by now
        got = {o.request_id: o for o in profiler.observations}
        assert set(got) == {"u0", "u1", "u2"}
        for reply in replies:
            sent = got[reply.request_id]
            assert (sent.model.name, sent.model.version) == (reply.model.name, reply.model.version)
            assert sent.queue_ms == pytest.approx(reply.queue_ms)
            assert sent.execution_ms == pytest.approx(reply.execution_ms)
            assert not sent.failed
    finally:
        loop_thread.run(app.stop(0))
        loop_thread.run(server.stop(0))
