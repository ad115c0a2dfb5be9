"""Processes the Selector benchmarks start (spawn): an Executor that answers at once, a Selector over
a memory store with fixed eligible profiles, and closed-loop client load. Each child reports its
address (or result) on a queue; CPU seconds come from /proc so a shared machine can still be read."""

from __future__ import annotations

import asyncio
import os
import time

FIXED_PROFILES = (  # name, accuracy %, mean ms, std ms: the digits pool's shape
    ("mlp-tiny", 90.0, 0.6, 0.1), ("cnn-small", 96.0, 1.2, 0.2), ("cnn-large", 98.5, 4.0, 0.5))


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def instant_executor_main(port_queue) -> None:
    import grpc

    from modipick.runtime.server import ServerOptions, run_until_signal, service_name, start_server
    from modipick.v1 import common_pb2, executor_pb2, executor_pb2_grpc

    prediction = common_pb2.Prediction(label=3, label_name="3", score=1.0)

    class Instant(executor_pb2_grpc.ExecutorServiceServicer):
        async def Execute(self, request, context):
            return executor_pb2.ExecuteResponse(request_id=request.request_id, model=request.model,
                                                prediction=prediction, queue_ms=0.0, execution_ms=0.01)

        async def ListModels(self, request, context):
            return executor_pb2.ListModelsResponse()

    async def serve() -> None:
        running = await start_server([(executor_pb2_grpc.add_ExecutorServiceServicer_to_server, Instant())],
                                     [service_name(executor_pb2, "ExecutorService")], ServerOptions(grace_s=0.5))
        port_queue.put(running.target)
        await run_until_signal(running)

    del grpc
    asyncio.run(serve())


def bare_proxy_main(executor_target: str, port_queue) -> None:
    """The floor: a SelectorService that only forwards Infer to the Executor (no budget, no policy,
    no validation, no logging context): what two grpc.aio hops cost on this machine."""
    from modipick.runtime.channels import aio_channel
    from modipick.runtime.server import ServerOptions, run_until_signal, service_name, start_server
    from modipick.v1 import common_pb2, executor_pb2, executor_pb2_grpc, selector_pb2, selector_pb2_grpc

    async def serve() -> None:
        stub = executor_pb2_grpc.ExecutorServiceStub(aio_channel(executor_target))
        ref = common_pb2.ModelRef(name=FIXED_PROFILES[-1][0], version=1)

        class Bare(selector_pb2_grpc.SelectorServiceServicer):
            async def Infer(self, request, context):
                reply = await stub.Execute(executor_pb2.ExecuteRequest(request_id=request.request_id, model=ref,
                                                                       input=request.input), timeout=1.0)
                return selector_pb2.InferResponse(request_id=request.request_id, disposition=1, model=reply.model,
                                                  prediction=reply.prediction)

        running = await start_server([(selector_pb2_grpc.add_SelectorServiceServicer_to_server, Bare())],
                                     [service_name(selector_pb2, "SelectorService")], ServerOptions(grace_s=0.5))
        port_queue.put(running.target)
        await run_until_signal(running)

    asyncio.run(serve())


def selector_main(executor_target: str, port_queue, profile_path: str | None, seed: int = 0) -> None:
    from modipick.core import ModelProfile
    from modipick.runtime.logging import configure_logging
    from modipick.runtime.server import run_until_signal
    from modipick.selector.app import SelectorSettings, start_selector
    from modipick.stores import make_store

    configure_logging(json=True, level="warning")
    store = make_store("memory")
    for name, acc, mean, std in FIXED_PROFILES:
        store.register(ModelProfile.from_stats(name, acc, mean, std, samples=100))

    async def serve() -> None:
        app = await start_selector(SelectorSettings(executor_target=executor_target, profiler_target="",
                                                    seed=seed, policy_params={"threshold_ms": 1.0}), store=store)
        port_queue.put(app.target)
        await run_until_signal(app.server, on_shutdown=lambda: app.stop(0))

    if profile_path:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
        try:
            asyncio.run(serve())
        finally:
            profiler.disable()
            profiler.dump_stats(profile_path)
    else:
        asyncio.run(serve())


def load_main(target: str, concurrency: int, warmup_s: float, seconds: float, sla_ms: float, start,
              results) -> None:
    """Closed loop: `concurrency` requests in flight; counts what completes in the measured window."""
    import numpy as np

    from modipick.client import AsyncModiPickClient, ModiPickError

    image = np.zeros((8, 8), np.float32)

    async def run() -> tuple[int, int, list[float], float, float]:
        ok = errors = 0
        latencies: list[float] = []
        async with AsyncModiPickClient(target) as client:
            await client.infer(image, sla_ms)  # connect
            start.wait(timeout=60)
            t0 = time.monotonic()
            measure_from, stop_at = t0 + warmup_s, t0 + warmup_s + seconds

            async def worker() -> None:
                nonlocal ok, errors
                while True:
                    began = time.monotonic()
                    if began >= stop_at:
                        return
                    try:
                        await client.infer(image, sla_ms)
                        failed = False
                    except ModiPickError:
                        failed = True
                    done = time.monotonic()
                    if measure_from <= began and done <= stop_at:
                        if failed:
                            errors += 1
                        else:
                            ok += 1
                            latencies.append((done - began) * 1000.0)

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        return ok, errors, latencies, measure_from, stop_at

    results.put(asyncio.run(run()))
