"""Selector overhead: (client -> Selector -> Executor) - (client -> Executor), digits pool, 200 req/s.

    python -m benchmarks.selector_overhead [--rate 200] [--seconds 20] [--sla 1000] [--auth]

Brings the suite up as `modipick up` does (Executor with embedded TensorFlow on the digits pool,
Profiler, Selector: separate processes, on a redis-server of its own), waits until every model is
eligible, then paces requests at --rate per second in total (open loop), alternating the two paths:
a held-out digit through the Selector with a plain stub (SelectorService.Infer, policy modipick,
deadline = SLA --sla), the next straight to the Executor (ExecutorService.Execute, plain stub) for the
model the Selector chose last, the next through the Selector with the SDK (AsyncModiPickClient), so
all paths run the same model mix under the same load, side by side. Overhead = the difference of
the two plain-stub paths' latency quantiles (the same client machinery on both sides); the SDK's own
client-side cost is printed apart, as is the Selector's time around the Executor call
(server_ms - queue_ms - execution_ms, from the reply's timings). "Less the model run" is the same
difference with each request's queue + execution time (as the Executor measured it, from the reply)
taken off its latency first: the model run is the same work on both paths, and its spread (a few ms
on a busy 2-vCPU machine) otherwise moves the difference of two p50s by tenths of a ms from run to
run.

The bare round trip the overhead is compared with: half an interval after each request through the
Selector, the same input goes to a bare grpc.aio server in a process of its own (benchmarks.echo_server:
no interceptor, the services' event loop), so the hop is timed in the same seconds, at the same load
and across processes as the Selector's own hops are; the target is the overhead's p50 against its p50.
On a shared VM one hop's time moves by a third from minute to minute, so a hop timed apart from the
suite says little about the minutes the suite ran. The benchmark also times, before the suite starts
and after it stops, a bare grpc.aio round trip paced every 5 ms in this process (the machine's
calibration, for comparing machines) and prints the overhead against it too.

--auth adds a fourth path: a second Selector process on the same store and Executor with client
authentication (an HS256 JWT, the same token on every call as a client reuses it), signed outcome
tickets and report rate limits on, reached with a plain stub; its p50 minus the first Selector's
(same run, same load) is what authentication costs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from modipick.runtime.event_loop import LOOPS

TARGET_P50_MS, TARGET_P99_MS = 1.0, 3.0
TARGET_AUTH_P50_MS = 0.2
TARGET_RATIO = 1.5  # overhead p50 against the bare round trip
AUTH_SECRET = "benchmark-jwt-secret-0123456789abcdef"
TICKET_KEY = "benchmark-ticket-key-0123456789"


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def start_redis(workdir: str) -> tuple[subprocess.Popen, str]:
    from modipick.cli.suite import free_port

    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is missing: install it (apt-get install redis-server)")
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", workdir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    return proc, f"redis://127.0.0.1:{port}/0"


async def measure(suite, args) -> dict:
    import grpc
    import numpy as np

    from modipick.cli.demo import wait_eligible
    from modipick.client import AsyncModiPickClient, ModiPickError
    from modipick.v1 import common_pb2, executor_pb2, executor_pb2_grpc, selector_pb2, selector_pb2_grpc
    from modipick.zoo.digits import held_out_digits
    from modipick.zoo.manifest import read_manifest

    await wait_eligible(suite.profiler_target, suite.executor_target, len(read_manifest(suite.model_base).models), 300)
    images, _ = held_out_digits()
    tensors = [common_pb2.Input(tensor=common_pb2.Tensor(dtype="float32", shape=[1, 8, 8, 1],
                                                         content=np.ascontiguousarray(im, np.float32).tobytes()))
               for im in images]
    via_selector: list[float] = []
    via_sdk: list[float] = []
    direct: list[float] = []
    inside: list[float] = []
    # each path's latency less the model's queue + run as the Executor measured it: the same overhead
    # without the model run's own spread (a few ms here), which both paths share
    selector_beside_model: list[float] = []
    direct_beside_model: list[float] = []
    errors = {"selector": 0, "sdk": 0, "direct": 0, "bare": 0, "auth": 0}
    via_auth: list[float] = []
    auth_beside_model: list[float] = []
    last_model = [common_pb2.ModelRef()]
    rng = random.Random(0)
    # the SDK's channel setting: deadlines sent as they are (docs/policy.md, HPACK)
    options = [("grpc.http2.hpack_table_size.encoder", 0)]
    bare: list[float] = []
    async with AsyncModiPickClient(suite.selector_target) as client, \
            grpc.aio.insecure_channel(suite.executor_target, options) as channel, \
            grpc.aio.insecure_channel(suite.selector_target, options) as selector_channel, \
            grpc.aio.insecure_channel(args.echo_target, options) as echo_channel:
        executor = executor_pb2_grpc.ExecutorServiceStub(channel)
        selector = selector_pb2_grpc.SelectorServiceStub(selector_channel)
        echo = executor_pb2_grpc.ExecutorServiceStub(echo_channel)
        await client.wait_ready()
        await channel.channel_ready()
        await selector_channel.channel_ready()
        await echo_channel.channel_ready()
        first = await client.infer(images[0], args.sla)
        last_model[0] = common_pb2.ModelRef(name=first.model, version=first.version)

        async def through_selector(index: int, record: bool) -> None:
            t0 = time.perf_counter()
            try:
                r = await selector.Infer(selector_pb2.InferRequest(
                    request_id=f"plain-{index}-{t0}", sla_ms=args.sla, policy="modipick", input=tensors[index]),
                    timeout=args.sla / 1000)
            except grpc.aio.AioRpcError:
                errors["selector"] += record
                return
            elapsed = (time.perf_counter() - t0) * 1000
            if r.disposition != selector_pb2.DISPOSITION_SERVED:
                return
            last_model[0] = r.model
            if record:
                via_selector.append(elapsed)
                inside.append(r.timings.server_ms - r.timings.queue_ms - r.timings.execution_ms)
                selector_beside_model.append(elapsed - r.timings.queue_ms - r.timings.execution_ms)

        auth_stub = None
        if args.auth:
            import jwt

            auth_target = await suite.add_selector(
                "--client-auth", "required", "--jwt-hs256-secret", AUTH_SECRET, "--jwt-audience", "modipick",
                "--ticket-key", TICKET_KEY, "--report-rate-per-s", "50")
            auth_channel = grpc.aio.insecure_channel(auth_target, options)
            await auth_channel.channel_ready()
            auth_stub = selector_pb2_grpc.SelectorServiceStub(auth_channel)
            token = jwt.encode({"sub": "bench/phone-1", "aud": "modipick", "exp": int(time.time()) + 3600},
                               AUTH_SECRET, algorithm="HS256")
            auth_metadata = (("authorization", f"Bearer {token}"),)

        async def through_auth(index: int, record: bool) -> None:
            t0 = time.perf_counter()
            try:
                r = await auth_stub.Infer(selector_pb2.InferRequest(
                    request_id=f"auth-{index}-{t0}", sla_ms=args.sla, policy="modipick", input=tensors[index]),
                    timeout=args.sla / 1000, metadata=auth_metadata)
            except grpc.aio.AioRpcError:
                errors["auth"] += record
                return
            elapsed = (time.perf_counter() - t0) * 1000
            if record and r.disposition == selector_pb2.DISPOSITION_SERVED:
                via_auth.append(elapsed)
                auth_beside_model.append(elapsed - r.timings.queue_ms - r.timings.execution_ms)

        async def through_sdk(index: int, record: bool) -> None:
            t0 = time.perf_counter()
            try:
                r = await client.infer(images[index], args.sla)
            except ModiPickError:
                errors["sdk"] += record
                return
            if record and not r.run_on_device:
                via_sdk.append((time.perf_counter() - t0) * 1000)

        async def straight(index: int, record: bool) -> None:
            t0 = time.perf_counter()
            try:
                reply = await executor.Execute(executor_pb2.ExecuteRequest(
                    request_id=f"direct-{index}", model=last_model[0],
                    input=tensors[index]), timeout=args.sla / 1000)
            except grpc.aio.AioRpcError:
                errors["direct"] += record
                return
            if record:
                elapsed = (time.perf_counter() - t0) * 1000
                direct.append(elapsed)
                direct_beside_model.append(elapsed - reply.queue_ms - reply.execution_ms)

        async def bare_hop(index: int, record: bool) -> None:
            t0 = time.perf_counter()
            try:
                await echo.Execute(executor_pb2.ExecuteRequest(
                    request_id=f"bare-{index}", model=last_model[0], input=tensors[index]), timeout=args.sla / 1000)
            except grpc.aio.AioRpcError:
                errors["bare"] += record
                return
            if record:
                bare.append((time.perf_counter() - t0) * 1000)

        def start_bare_hop(index: int, record: bool) -> None:
            tasks.append(asyncio.create_task(bare_hop(index, record)))

        paths = (through_selector, straight, through_sdk) + ((through_auth,) if args.auth else ())
        tasks = []
        loop = asyncio.get_running_loop()
        interval = 1.0 / args.rate
        total = int(args.rate * (args.warmup + args.seconds))
        start = time.perf_counter()
        for k in range(total):
            delay = start + k * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            path = paths[k % len(paths)]
            record = k >= args.rate * args.warmup
            tasks.append(asyncio.create_task(path(rng.randrange(len(images)), record)))
            if path is through_selector:  # the bare hop half an interval later, beside the rotation
                loop.call_later(interval / 2, start_bare_hop, rng.randrange(len(images)), record)
            if k % args.rate == 0:
                print(f"\r{k / args.rate:.0f}/{args.warmup + args.seconds:g} s", end="", file=sys.stderr, flush=True)
        await asyncio.sleep(interval)  # the last bare hop is scheduled half an interval on
        await asyncio.gather(*tasks)
        achieved = total / (time.perf_counter() - start)
        if auth_stub is not None:
            await auth_channel.close()
        print(file=sys.stderr)
    return dict(via_selector=via_selector, via_sdk=via_sdk, direct=direct, inside=inside, errors=errors,
                achieved=achieved, selector_beside_model=selector_beside_model, direct_beside_model=direct_beside_model,
                via_auth=via_auth, auth_beside_model=auth_beside_model, bare=bare)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=200, help="requests per second, all paths together")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--sla", type=float, default=1000.0)
    parser.add_argument("--executor-transport", choices=("unix", "tcp"), default="unix",
                        help="where the Selector calls the Executor: on its Unix socket (`modipick up`'s way) "
                             "or at its TCP address")
    parser.add_argument("--tf-intra-op-threads", type=int, default=0,
                        help="the Executor's --tf-intra-op-threads (0: TensorFlow picks, one per core)")
    parser.add_argument("--auth", action="store_true",
                        help="also measure a second Selector with client authentication and signed tickets on")
    parser.add_argument("--event-loop", choices=LOOPS, default="auto",
                        help="the services' --event-loop (auto: uvloop where installed)")
    args = parser.parse_args(argv)
    from modipick.cli.suite import Suite, SuiteSettings, free_port
    from modipick.runtime.logging import configure_logging

    configure_logging(level="warning")
    from benchmarks.selector_hot_path import aio_round_trip

    # the machine's own cost of one paced gRPC hop (both ends in this process), timed before and
    # after the suite runs: it tells a slower machine from slower code when comparing machines
    calibration_before, _ = asyncio.run(aio_round_trip(1000, 0.005))
    with tempfile.TemporaryDirectory() as workdir, open(os.path.join(workdir, "services.log"), "w") as log:
        redis, url = start_redis(workdir)
        echo_port = free_port()
        args.echo_target = f"127.0.0.1:{echo_port}"
        echo = subprocess.Popen([sys.executable, "-m", "benchmarks.echo_server", str(echo_port),
                                 "--event-loop", args.event_loop], stdout=log, stderr=log)
        try:
            settings = SuiteSettings(selector_port=0, executor_port=0, profiler_port=0, redis_url=url,
                                     threshold_ms=1.0, log_level="warning", child_output=log,
                                     execute_socket=args.executor_transport == "unix",
                                     extra_env={"MODIPICK_TF_INTRA_OP_THREADS": str(args.tf_intra_op_threads),
                                                "MODIPICK_EVENT_LOOP": args.event_loop})

            async def run() -> dict:
                async with Suite(settings) as suite:
                    return await measure(suite, args)

            result = asyncio.run(run())
        finally:
            echo.kill()
            echo.wait()
            redis.kill()
            redis.wait()
    calibration_after, _ = asyncio.run(aio_round_trip(1000, 0.005))
    calibration_p50 = (calibration_before + calibration_after) / 2
    sel, dire, inside, sdk = result["via_selector"], result["direct"], result["inside"], result["via_sdk"]
    print(f"measured {len(sel)} via the Selector + {len(dire)} direct + {len(sdk)} via the SDK, "
          f"{result['achieved']:.0f} req/s offered (target {args.rate}/s); errors {result['errors']}")
    print(f"{'':>22} {'p50':>7} {'p90':>7} {'p99':>7}  (ms)")
    for label, values in (("client->Selector->Exec", sel), ("client->Executor", dire),
                          ("SDK->Selector->Exec", sdk)):
        print(f"{label:>22} {quantile(values, .5):7.2f} {quantile(values, .9):7.2f} {quantile(values, .99):7.2f}")
    p50 = quantile(sel, .5) - quantile(dire, .5)
    p99 = quantile(sel, .99) - quantile(dire, .99)
    print(f"{'overhead (difference)':>22} {p50:7.2f} {quantile(sel, .9) - quantile(dire, .9):7.2f} {p99:7.2f}")
    beside_sel, beside_direct = result["selector_beside_model"], result["direct_beside_model"]
    print(f"{'less the model run':>22} {quantile(beside_sel, .5) - quantile(beside_direct, .5):7.2f} "
          f"{quantile(beside_sel, .9) - quantile(beside_direct, .9):7.2f} "
          f"{quantile(beside_sel, .99) - quantile(beside_direct, .99):7.2f}"
          "  (the difference of each path's latency - queue - execution)")
    model_sel = [a - b for a, b in zip(sel, beside_sel)]
    model_direct = [a - b for a, b in zip(dire, beside_direct)]
    print(f"{'model queue + run':>22} p50 {quantile(model_sel, .5):.2f} ms via the Selector, "
          f"{quantile(model_direct, .5):.2f} ms direct  (as the Executor measured them)")
    print(f"{'inside the Selector':>22} {quantile(inside, .5):7.2f} {quantile(inside, .9):7.2f} "
          f"{quantile(inside, .99):7.2f}  (server_ms - queue - execution)")
    if sdk:
        print(f"{'SDK client-side cost':>22} {quantile(sdk, .5) - quantile(sel, .5):7.2f} "
              f"{quantile(sdk, .9) - quantile(sel, .9):7.2f} {quantile(sdk, .99) - quantile(sel, .99):7.2f}"
              "  (SDK path - plain-stub path)")
    auth = result["via_auth"]
    if auth:
        beside_auth = result["auth_beside_model"]
        growth = quantile(auth, .5) - quantile(sel, .5)
        growth_beside = quantile(beside_auth, .5) - quantile(beside_sel, .5)
        print(f"{'auth on (JWT+tickets)':>22} {quantile(auth, .5):7.2f} {quantile(auth, .9):7.2f} "
              f"{quantile(auth, .99):7.2f}  ({len(auth)} requests, errors {result['errors']['auth']})")
        print(f"{'auth on - auth off':>22} p50 {growth:+.3f} ms, less the model run {growth_beside:+.3f} ms; "
              f"target <= {TARGET_AUTH_P50_MS:g} ms: {'PASS' if growth_beside <= TARGET_AUTH_P50_MS else 'MISS'}")
    ok = p50 <= TARGET_P50_MS and p99 <= TARGET_P99_MS
    print(f"target p50 <= {TARGET_P50_MS:g} ms, p99 <= {TARGET_P99_MS:g} ms: {'PASS' if ok else 'MISS'}")
    print(f"machine calibration: a bare grpc.aio round trip paced every 5 ms takes p50 {calibration_p50:.2f} ms "
          f"({calibration_before:.2f} before the suite ran, {calibration_after:.2f} after)")
    bare = result["bare"]
    bare_p50 = quantile(bare, .5)
    print(f"{'bare round trip':>22} {bare_p50:7.2f} {quantile(bare, .9):7.2f} {quantile(bare, .99):7.2f}"
          f"  (to a bare grpc.aio server in a process of its own, between the other paths)")
    ratio = p50 / bare_p50
    print(f"overhead p50 / bare round trip p50: {ratio:.2f} timed between the other paths, "
          f"{p50 / calibration_p50:.2f} against the calibration")
    print(f"target: overhead p50 <= {TARGET_RATIO:g}x the bare round trip timed between the other paths: "
          f"{'PASS' if ratio <= TARGET_RATIO else 'MISS'}")
    print(f"Selector -> Executor: {args.executor_transport}; Executor TensorFlow intra-op threads: "
          f"{args.tf_intra_op_threads or 'auto'}; services' event loop: {args.event_loop}")
    print(f"machine: nproc {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}; means: via Selector "
          f"{statistics.mean(sel):.2f} ms, direct {statistics.mean(dire):.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
