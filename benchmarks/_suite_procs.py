"""Processes the Selector benchmarks start (spawn): an Executor that answers at once, a Selector over
a memory store with fixed eligible profiles, and closed-loop client load. Each child reports its
address (or result) on a queue; CPU seconds come from /proc so a shared machine can still be read."""

from __future__ import annotations

import asyncio
import os
import time

from modipick.runtime.event_loop import run_on

FIXED_PROFILES = (  # name, accuracy %, mean ms, std ms: the digits pool's shape
    ("mlp-tiny", 90.0, 0.6, 0.1), ("cnn-small", 96.0, 1.2, 0.2), ("cnn-large", 98.5, 4.0, 0.5))


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class InstantBackend:
    """Every FIXED_PROFILES model, AVAILABLE, answering at once: the Executor's own path, no model."""

    name = "instant"

    def __init__(self) -> None:
        import numpy as np

        from modipick.executor.backends.base import ModelInfo

        self._output = np.array([[0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]], np.float32)
        self._models = {n: ModelInfo(n, 1, "AVAILABLE", input_shape=(-1, 8, 8, 1), declared_accuracy=a,
                                     labels=tuple(str(i) for i in range(10)))
                        for n, a, _, _ in FIXED_PROFILES}

    async def start(self) -> None:
        pass

    async def models(self):
        return list(self._models.values())

    async def resolve(self, ref, *, timeout_s=None):
        from modipick.executor.errors import ModelNotFound

        try:
            return self._models[ref.name]
        except KeyError:
            raise ModelNotFound(f"no model {ref.name}") from None

    async def predict(self, model, batch, *, signature="serving_default", timeout_s=None, version_label=""):
        return model.version, self._output

    async def close(self) -> None:
        pass


def instant_executor_main(port_queue, loop: str = "auto", unix_socket: str = "") -> None:
    """The real Executor service (admission, input checks, Execute) on InstantBackend; with `unix_socket`
    it serves gRPC on that Unix socket as well."""
    from modipick.executor.app import ExecutorSettings, start_executor
    from modipick.executor.reporter import NullSink
    from modipick.runtime.logging import configure_logging
    from modipick.runtime.server import run_until_signal

    configure_logging(json=True, level="warning")

    async def serve() -> None:
        app = await start_executor(ExecutorSettings(address="127.0.0.1:0", backend="instant", max_concurrency=64,
                                                    max_queue=1024, grace_s=0.5, unix_socket=unix_socket),
                                   backend=InstantBackend(), sink=NullSink())
        port_queue.put(app.target)
        await run_until_signal(app.server, on_shutdown=lambda: app.stop(0))

    run_on(loop, serve)


def bare_proxy_main(executor_target: str, port_queue, loop: str = "auto") -> None:
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

    run_on(loop, serve)


def selector_main(executor_target: str, port_queue, profile_path: str | None, seed: int = 0,
                  loop: str = "auto") -> None:
    from modipick.core import ModelProfile
    from modipick.runtime.entrypoint import freeze_startup_heap
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
                                                    seed=seed, policy_params={"threshold_ms": 1.0}),
                                    store=store)
        freeze_startup_heap()  # as `modipick selector` does once it serves
        port_queue.put(app.target)

        async def stop() -> None:
            port_queue.put(app.metrics.dispositions())  # what it answered, for the caller to check
            await app.stop(0)

        await run_until_signal(app.server, on_shutdown=stop)

    if profile_path:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
        try:
            run_on(loop, serve)
        finally:
            profiler.disable()
            profiler.dump_stats(profile_path)
    else:
        run_on(loop, serve)


def _stub_infer(target: str, image, sla_ms: float):
    """A plain stub and a request built once (a fresh id and send stamp per call), as a load tool
    such as ghz sends: the load costs the machine less than the SDK's per-call work."""
    import grpc

    from modipick.client.core import build_infer
    from modipick.runtime.channels import aio_channel
    from modipick.v1 import selector_pb2, selector_pb2_grpc

    template = build_infer(image, sla_ms, policy="", client_id="bench", request_id="", send_time_ns=0)
    stub = selector_pb2_grpc.SelectorServiceStub(aio_channel(target))
    ids = iter(range(1, 1 << 62))

    async def infer(image_unused, sla_unused) -> None:
        request = selector_pb2.InferRequest()
        request.CopyFrom(template)
        request.request_id = f"bench-{next(ids)}"
        request.client_send_time.GetCurrentTime()
        try:
            await stub.Infer(request, timeout=sla_ms / 1000.0)
        except grpc.aio.AioRpcError as exc:
            raise RuntimeError(exc.code().name) from exc

    return infer


def load_main(target: str, concurrency: int, warmup_s: float, seconds: float, sla_ms: float, start,
              results, load: str = "sdk") -> None:
    """Closed loop: `concurrency` requests in flight; counts what completes in the measured window.
    load 'sdk' calls through AsyncModiPickClient, 'stub' through a plain stub (`_stub_infer`)."""
    import contextlib

    import numpy as np

    from modipick.client import AsyncModiPickClient, ModiPickError

    image = np.zeros((8, 8), np.float32)

    async def run() -> tuple[int, int, list[float], float, float]:
        ok = errors = 0
        latencies: list[float] = []
        async with contextlib.AsyncExitStack() as stack:
            if load == "stub":
                client = type("StubClient", (), {"infer": staticmethod(_stub_infer(target, image, sla_ms))})()
            else:
                client = await stack.enter_async_context(AsyncModiPickClient(target))
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
                    except (ModiPickError, RuntimeError):
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
