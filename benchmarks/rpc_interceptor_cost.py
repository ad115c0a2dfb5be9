"""What the services' RPC interceptor (per-RPC counts by status code, handling time, request-id
binding) costs a unary call: two grpc.aio servers in this process, one bare, one with the
interceptor, each called by a grpc.aio client with 16 calls in flight, in alternating rounds so
both see the same machine at the same moment.

    python -m benchmarks.rpc_interceptor_cost [--calls 3000] [--rounds 5]

The handler echoes its request, so the figure is gRPC's per-call machinery (client and server,
one process) with and without the interceptor; the ratio is what to read.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time

SERVICE = "bench.Echo"


async def _echo(request: bytes, context) -> bytes:
    return request


def _registration(_servicer, server) -> None:
    import grpc

    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        SERVICE, {"Echo": grpc.unary_unary_rpc_method_handler(_echo)}),))


async def cpu_us_per_call(interceptors: list, calls: int, in_flight: int = 16) -> float:
    import grpc

    from modipick.runtime.server import ServerOptions, start_server

    running = await start_server([(_registration, None)], [SERVICE], ServerOptions(grace_s=0.1),
                                 interceptors=interceptors)
    try:
        async with grpc.aio.insecure_channel(running.target) as channel:
            call = channel.unary_unary(f"/{SERVICE}/Echo")
            for _ in range(200):  # warm-up: connection, code paths
                await call(b"x")

            async def caller() -> None:
                for _ in range(calls // in_flight):
                    await call(b"x")

            started = time.process_time()
            await asyncio.gather(*(caller() for _ in range(in_flight)))
            return (time.process_time() - started) / (calls // in_flight * in_flight) * 1e6
    finally:
        await running.stop()


async def measure(calls: int, rounds: int) -> tuple[list[float], list[float]]:
    from prometheus_client import CollectorRegistry

    from modipick.runtime.rpc_interceptor import RpcInterceptor, RpcMetrics

    bare: list[float] = []
    intercepted: list[float] = []
    for _ in range(rounds):
        bare.append(await cpu_us_per_call([], calls))
        intercepted.append(await cpu_us_per_call([RpcInterceptor(RpcMetrics(CollectorRegistry()))], calls))
    return bare, intercepted


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    bare, intercepted = asyncio.run(measure(args.calls, args.rounds))
    b, i = statistics.median(bare), statistics.median(intercepted)
    print(f"CPU per unary call (client + server), median of {args.rounds} rounds of {args.calls}:")
    print(f"  bare server        {b:7.1f} us   {[round(x) for x in bare]}")
    print(f"  with RpcInterceptor {i:6.1f} us   {[round(x) for x in intercepted]}")
    print(f"  ratio {i / b:.3f} ({i - b:+.1f} us per call)")
    print(f"machine: nproc {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
