"""The Selector's own Python per request, without gRPC, and the gRPC hop it sits behind.

    python -m benchmarks.selector_hot_path [--requests 20000] [--profile]

1. `SelectorService.Infer` called in-process through the RPC interceptor's wrapper (the app as
   `start_selector` wires it: memory store with three fixed eligible profiles, the executor pool with
   a stub that answers at once, a fake servicer context): process CPU per request = validation, budget, return-leg estimate, policy decision,
   per-request RNG, metrics, outcome memory and messages; back-to-back, and then one call every
   5 ms (wall time), as at the overhead benchmark's 200 req/s, where the same code runs several
   times slower on a CPU that idled in between.
2. The floor under any grpc.aio Selector: one bare unary round trip (trivial client and server in one
   process), back-to-back and paced every 4 ms, with grpc.aio and with grpc's sync stack.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from concurrent import futures

import grpc

from benchmarks._suite_procs import FIXED_PROFILES
from benchmarks.echo_server import Echo
from modipick.v1 import common_pb2, executor_pb2, executor_pb2_grpc, selector_pb2


class _Context:
    def time_remaining(self) -> float:
        return 0.9

    def invocation_metadata(self):
        return ()

    def code(self):
        return None

    async def abort(self, code, details):
        raise RuntimeError(f"{code}: {details}")


async def infer_cpu_us(requests: int, profile: bool, paced: int = 0, policy: str = "") -> tuple[float, float]:
    from modipick.core import ModelProfile
    from prometheus_client import CollectorRegistry

    from modipick.runtime.logging import configure_logging
    from modipick.runtime.rpc_interceptor import RpcInterceptor, RpcMetrics
    from modipick.selector.app import SelectorSettings, start_selector
    from modipick.stores import make_store

    configure_logging(json=True, level="error")
    store = make_store("memory")
    for name, acc, mean, std in FIXED_PROFILES:
        store.register(ModelProfile.from_stats(name, acc, mean, std, samples=100))
    app = await start_selector(SelectorSettings(executor_target="127.0.0.1:1", profiler_target="",
                                                policy_params={"threshold_ms": 1.0}), store=store)
    reply = executor_pb2.ExecuteResponse(model=common_pb2.ModelRef(name=FIXED_PROFILES[-1][0], version=1),
                                         prediction=common_pb2.Prediction(label=3), execution_ms=0.01)

    class InstantStub:  # an Executor that answers at once, without a hop
        def Execute(self, request, timeout=None, metadata=None):
            answered = asyncio.get_running_loop().create_future()
            answered.set_result(reply)
            return answered

        async def ListModels(self, request, timeout=None):
            return executor_pb2.ListModelsResponse()

    for replica in app.pool.replicas:
        replica.stub, replica.ejected_until = InstantStub(), 0.0
    request = selector_pb2.InferRequest(sla_ms=1000, policy=policy)
    request.input.tensor.dtype = "float32"
    request.input.tensor.shape.extend([8, 8])
    request.input.tensor.content = bytes(8 * 8 * 4)
    context = _Context()
    infer = RpcInterceptor(RpcMetrics(CollectorRegistry()))._wrap(app.service.Infer, "modipick.v1.SelectorService",
                                                                  "Infer")
    try:
        for i in range(2000):
            request.request_id = f"warm-{i}"
            await infer(request, context)
        profiler = None
        if profile:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        started = time.process_time()
        for i in range(requests):
            request.request_id = f"req-{i}"
            await infer(request, context)
        used = time.process_time() - started
        if profiler is not None:
            import pstats

            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
        paced_us = []
        for i in range(paced):  # after an idle 5 ms, as at 200 req/s: caches and branch predictors cold
            await asyncio.sleep(0.005)
            request.request_id = f"paced-{i}"
            began = time.perf_counter()
            await infer(request, context)
            paced_us.append((time.perf_counter() - began) * 1e6)
        return used / requests * 1e6, statistics.median(paced_us) if paced_us else float("nan")
    finally:
        await app.stop(0)


class _Echo(executor_pb2_grpc.ExecutorServiceServicer):
    def Execute(self, request, context):
        return executor_pb2.ExecuteResponse(request_id=request.request_id)


def _quantiles(latencies: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(latencies, n=100)
    return q[49], q[98]


async def aio_round_trip(calls: int, gap_s: float) -> tuple[float, float]:
    server = grpc.aio.server()
    executor_pb2_grpc.add_ExecutorServiceServicer_to_server(Echo(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = executor_pb2_grpc.ExecutorServiceStub(channel)
        latencies = []
        for i in range(200 + calls):
            began = time.perf_counter()
            await stub.Execute(executor_pb2.ExecuteRequest(request_id="x"), timeout=1.0)
            if i >= 200:
                latencies.append((time.perf_counter() - began) * 1000.0)
            if gap_s:
                await asyncio.sleep(gap_s)
    await server.stop(0)
    return _quantiles(latencies)


def sync_round_trip(calls: int, gap_s: float) -> tuple[float, float]:
    server = grpc.server(futures.ThreadPoolExecutor(4))
    executor_pb2_grpc.add_ExecutorServiceServicer_to_server(_Echo(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = executor_pb2_grpc.ExecutorServiceStub(channel)
        latencies = []
        for i in range(200 + calls):
            began = time.perf_counter()
            stub.Execute(executor_pb2.ExecuteRequest(request_id="x"), timeout=1.0)
            if i >= 200:
                latencies.append((time.perf_counter() - began) * 1000.0)
            if gap_s:
                time.sleep(gap_s)
    server.stop(0)
    return _quantiles(latencies)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--calls", type=int, default=2_000, help="round trips per hop measurement")
    parser.add_argument("--profile", action="store_true", help="cProfile the in-process Infer loop")
    parser.add_argument("--paced", type=int, default=1000, help="Infer calls made one every 5 ms")
    parser.add_argument("--policy", default="",
                        help="the requests' policy ('': the Selector's default, as selector_throughput sends)")
    parser.add_argument("--infer-only", action="store_true", help="skip the bare gRPC round trips")
    args = parser.parse_args(argv)
    us, paced_us = asyncio.run(infer_cpu_us(args.requests, args.profile, args.paced, args.policy))
    print(f"Selector Infer, in process (no gRPC): {us:.1f} us of CPU per request back-to-back; "
          f"p50 {paced_us:.1f} us of wall time called every 5 ms")
    if args.infer_only:
        return 0
    for gap in (0.0, 0.004):
        how = "back-to-back" if not gap else f"paced every {gap * 1000:g} ms"
        p50, p99 = asyncio.run(aio_round_trip(args.calls, gap))
        print(f"bare grpc.aio unary round trip, {how}: p50 {p50:.3f} ms, p99 {p99:.3f} ms")
        p50, p99 = sync_round_trip(args.calls, gap)
        print(f"bare grpc sync unary round trip, {how}: p50 {p50:.3f} ms, p99 {p99:.3f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
