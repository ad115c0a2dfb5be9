"""The latency floor of the Selector's extra hop: a do-nothing proxy, grpc.aio or sync.

    python -m benchmarks.proxy_hop_latency [aio|sync ...]

Processes (spawn): the real Executor service on a backend that answers at once, and in turn each
proxy kind, which forwards Execute to it and does nothing else: `aio` as a unary grpc.aio call (the
Selector's own stack), `sync` as a unary call from grpc's sync stack. This process alternates calls straight to the Executor and through the
proxy, one every 5 ms (3,000 each after 200 warm-up), and prints both medians and the difference: what
one more gRPC hop costs before any Selector logic runs.
"""
from __future__ import annotations

import asyncio
import multiprocessing as mp
import statistics
import sys
import time
from concurrent import futures

def aio_proxy_main(target, q):
    import grpc
    from modipick.v1 import executor_pb2_grpc
    async def run():
        stub = executor_pb2_grpc.ExecutorServiceStub(grpc.aio.insecure_channel(target))
        class P(executor_pb2_grpc.ExecutorServiceServicer):
            async def Execute(self, r, c): return await stub.Execute(r, timeout=1.0)
        s = grpc.aio.server(); executor_pb2_grpc.add_ExecutorServiceServicer_to_server(P(), s)
        p = s.add_insecure_port("127.0.0.1:0"); await s.start(); q.put(p); await s.wait_for_termination()
    asyncio.run(run())

def sync_proxy_main(target, q):
    import grpc
    from modipick.v1 import executor_pb2, executor_pb2_grpc
    stub = executor_pb2_grpc.ExecutorServiceStub(grpc.insecure_channel(target))
    class P(executor_pb2_grpc.ExecutorServiceServicer):
        def Execute(self, r, c): return stub.Execute(r, timeout=1.0)
    s = grpc.server(futures.ThreadPoolExecutor(8)); executor_pb2_grpc.add_ExecutorServiceServicer_to_server(P(), s)
    p = s.add_insecure_port("127.0.0.1:0"); s.start(); q.put(p); s.wait_for_termination()

async def measure(direct, via, n=3000, gap=0.005):
    import grpc
    import numpy as np
    from modipick.client.core import to_input
    from modipick.v1 import common_pb2, executor_pb2, executor_pb2_grpc
    request = executor_pb2.ExecuteRequest(request_id="x", model=common_pb2.ModelRef(name="cnn-large", version=1),
                                          input=to_input(np.zeros((8, 8), np.float32)))
    a = executor_pb2_grpc.ExecutorServiceStub(grpc.aio.insecure_channel(direct))
    b = executor_pb2_grpc.ExecutorServiceStub(grpc.aio.insecure_channel(f"127.0.0.1:{via}"))
    da, db = [], []
    for i in range(n + 200):
        for stub, out in ((a, da), (b, db)):
            t = time.perf_counter(); await stub.Execute(request, timeout=1.0)
            if i >= 200: out.append((time.perf_counter() - t) * 1000)
            await asyncio.sleep(gap)
    qa, qb = statistics.quantiles(da, n=100), statistics.quantiles(db, n=100)
    return qa[49], qb[49], qb[49] - qa[49], qb[98] - qa[98]

if __name__ == "__main__":
    from benchmarks._suite_procs import instant_executor_main
    ctx = mp.get_context("spawn"); q = ctx.Queue()
    e = ctx.Process(target=instant_executor_main, args=(q,), daemon=True); e.start(); ep = q.get()
    for kind in sys.argv[1:] or ["aio", "sync", "aio", "sync"]:
        main, args = {"aio": (aio_proxy_main, (ep, q)), "sync": (sync_proxy_main, (ep, q))}[kind]
        p = ctx.Process(target=main, args=args, daemon=True)
        p.start(); pp = q.get(); time.sleep(0.5)
        d, v, o50, o99 = asyncio.run(measure(ep, pp))
        print(f"{kind} proxy: direct p50 {d:.3f}, via p50 {v:.3f}, overhead p50 {o50:.3f} p99 {o99:.3f} ms", flush=True)
        p.kill()
