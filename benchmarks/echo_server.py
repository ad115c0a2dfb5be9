"""A bare grpc.aio server in a process of its own: ExecutorService.Execute answers at once with an
empty reply, no interceptor, on the event loop the services use. The overhead benchmark calls it
between its other paths, so the hop it is compared with is timed in the same seconds, across
processes as the Selector's is.

    python -m benchmarks.echo_server PORT [--event-loop auto|asyncio|uvloop]
"""

from __future__ import annotations

import argparse
import asyncio

import grpc

from modipick.runtime.event_loop import LOOPS, run_on
from modipick.v1 import executor_pb2, executor_pb2_grpc


class Echo(executor_pb2_grpc.ExecutorServiceServicer):
    async def Execute(self, request, context):
        return executor_pb2.ExecuteResponse(request_id=request.request_id)


async def serve(port: int) -> None:
    server = grpc.aio.server()
    executor_pb2_grpc.add_ExecutorServiceServicer_to_server(Echo(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int)
    parser.add_argument("--event-loop", choices=LOOPS, default="auto")
    args = parser.parse_args(argv)
    run_on(args.event_loop, lambda: serve(args.port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
