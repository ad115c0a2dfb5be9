"""Selector throughput: one Selector replica in front of an Executor whose model answers at once.

    python -m benchmarks.selector_throughput [--load h2load|stub|sdk] [--transport unix|tcp]
                                             [--seconds 10] [--clients 2] [--concurrency 32] [--profile]

Processes (spawn): the Executor (the real service, admission and input checks included, on a
backend whose three models answer at once), one Selector (memory store with three fixed eligible
profiles; the request path never reads the store anyway), and the load, keeping
clients x concurrency requests in flight (8x8 float32 tensor, SLA 1 s, policy modipick):

- `h2load` (the default when installed: `apt-get install nghttp2-client`): nghttp2's HTTP/2 load
  tool in C sends the same gRPC-framed InferRequest, as ghz would. It costs the machine ~20 us per
  request, so on a 2-core box the Selector and the Executor get the cores. h2load cannot read
  gRPC trailers, so the Selector's own counters are checked afterwards: every request it answered
  was served, none refused or failed;
- `stub`: Python processes on a plain stub with a prebuilt request (a fresh id and send stamp each);
- `sdk`: Python processes through AsyncModiPickClient.

Reports requests/s in the measured window and the CPU seconds each process used: the Selector's CPU
per request gives its capacity per core, which a shared machine cannot hide. --profile dumps a
cProfile of the Selector; --bare-proxy puts a pass-through proxy in the Selector's place.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import pstats
import re
import resource
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time

from benchmarks._suite_procs import bare_proxy_main, cpu_seconds, instant_executor_main, load_main, selector_main
from modipick.runtime.event_loop import LOOPS

TARGET_RPS = 1500
SLA_MS = 1000.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--clients", type=int, default=2, help="load connections (processes for stub/sdk)")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight per load client")
    parser.add_argument("--load", choices=("h2load", "stub", "sdk"),
                        default="h2load" if shutil.which("h2load") else "stub")
    parser.add_argument("--transport", choices=("unix", "tcp"), default="unix",
                        help="where the Selector (or the bare proxy) calls the Executor's Execute: on its Unix "
                             "socket (unix:PATH, `modipick up`'s way) or at its TCP address")
    parser.add_argument("--event-loop", choices=LOOPS, default="auto",
                        help="the Executor's and the Selector's event loop (the services' --event-loop)")
    parser.add_argument("--profile", action="store_true", help="cProfile the Selector process")
    parser.add_argument("--bare-proxy", action="store_true",
                        help="replace the Selector by a pass-through proxy: the grpc.aio floor for comparison")
    args = parser.parse_args(argv)
    if args.load == "h2load" and not shutil.which("h2load"):
        parser.error("--load h2load needs h2load on PATH (apt-get install nghttp2-client)")
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = []
    profile_path = tempfile.mktemp(suffix=".prof") if args.profile else None
    socket_dir = tempfile.TemporaryDirectory(prefix="modipick-bench-")
    unix_socket = os.path.join(socket_dir.name, "executor.sock") if args.transport == "unix" else ""
    counts = None
    try:
        executor = ctx.Process(target=instant_executor_main, args=(queue, args.event_loop, unix_socket),
                               daemon=True)
        executor.start()
        procs.append(executor)
        executor_target = queue.get(timeout=60)
        if unix_socket:
            executor_target = f"unix:{unix_socket}"
        if args.bare_proxy:
            selector = ctx.Process(target=bare_proxy_main, args=(executor_target, queue, args.event_loop), daemon=True)
        else:
            selector = ctx.Process(target=selector_main, daemon=True, args=(
                executor_target, queue, profile_path, 0, args.event_loop))
        selector.start()
        procs.append(selector)
        selector_target = queue.get(timeout=60)
        print(f"load: {args.load}, {args.clients} x {args.concurrency} in flight, {args.warmup:g} s warm-up + "
              f"{args.seconds:g} s measured; Selector -> Executor: {args.transport}; event loop {args.event_loop} ...",
              file=sys.stderr)
        driver = _h2load if args.load == "h2load" else _python_load
        ok, errors, latencies, cpu = driver(args, ctx, selector_target, (executor, selector))
        if not args.bare_proxy:
            os.kill(selector.pid, signal.SIGTERM)
            counts = queue.get(timeout=30)
    finally:
        for p in reversed(procs):
            if p.is_alive():
                os.kill(p.pid, signal.SIGTERM)
                p.join(15)
        socket_dir.cleanup()
    rps = ok / args.seconds
    print(f"requests ok {ok}, errors {errors}")
    if counts is not None:
        failed = {k: v for k, v in counts.items() if k != "served"}
        print(f"Selector counters (warm-up included): {counts}" + ("" if not failed else "  <- NOT ALL SERVED"))
        if failed:
            errors += sum(failed.values())
    print(f"throughput {rps:,.0f} req/s (target >= {TARGET_RPS:,}): "
          f"{'PASS' if rps >= TARGET_RPS and not errors else 'SHORT'}")
    if latencies:
        q = statistics.quantiles(latencies, n=100)
        print(f"client latency ms: p50 {q[49]:.2f}  p90 {q[89]:.2f}  p99 {q[98]:.2f}")
    served = max(1.0, ok)
    window = args.seconds
    print("CPU in window (share of a core): " + ", ".join(f"{name} {sec / window:.0%}" for name, sec in cpu.items()))
    print("CPU per request us: " + ", ".join(f"{name} {sec / served * 1e6:.0f}" for name, sec in cpu.items())
          + f", all {sum(cpu.values()) / served * 1e6:.0f}")
    per_req_us = cpu["selector"] / served * 1e6
    print(f"selector CPU per request ~ {per_req_us:.0f} us -> ~{1e6 / per_req_us:,.0f} req/s per dedicated core")
    print(f"machine: nproc {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}")
    if profile_path and os.path.exists(profile_path):
        stats = pstats.Stats(profile_path)
        stats.sort_stats("tottime").print_stats(25)
        os.environ.get("KEEP_PROFILE") or os.unlink(profile_path)
        print("profile", profile_path)
    return 0


def _h2load(args, ctx, target: str, services) -> tuple[int, int, list[float], dict[str, float]]:
    import numpy as np

    from modipick.client.core import build_infer

    request = build_infer(np.zeros((8, 8), np.float32), SLA_MS, policy="", client_id="bench",
                          request_id="h2load", send_time_ns=0)
    request.ClearField("client_send_time")  # the budget comes from the grpc-timeout header
    body = request.SerializeToString()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "infer.grpc")
        with open(path, "wb") as fh:
            fh.write(b"\x00" + struct.pack(">I", len(body)) + body)  # one uncompressed gRPC frame
        command = ["h2load", "-D", f"{args.seconds:g}", f"--warm-up-time={args.warmup:g}",
                   "-c", str(args.clients), "-m", str(args.concurrency), "-d", path,
                   "-H", "content-type: application/grpc", "-H", "te: trailers",
                   "-H", f"grpc-timeout: {int(SLA_MS)}m", f"http://{target}/modipick.v1.SelectorService/Infer"]
        before_children = resource.getrusage(resource.RUSAGE_CHILDREN)
        load = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(args.warmup + 0.1)
        before = {p.pid: cpu_seconds(p.pid) for p in services}
        output, _ = load.communicate(timeout=args.warmup + args.seconds + 60)
        after = {p.pid: cpu_seconds(p.pid) for p in services}
        after_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    if load.returncode != 0:
        raise SystemExit(f"h2load failed ({load.returncode}):\n{output}")
    found = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                      r"(\d+) errored, (\d+) timeout", output)
    if found is None:
        raise SystemExit(f"cannot read h2load's summary:\n{output}")
    total, done, ok, failed, errored, timeout = map(int, found.groups())
    mean = re.search(r"time for request:\s+(\S+)\s+(\S+)\s+(\S+)", output)
    if mean:
        print(f"h2load time for request: min {mean.group(1)}, max {mean.group(2)}, mean {mean.group(3)}")
    # h2load's CPU includes its warm-up; scale it to the measured window
    load_cpu = ((after_children.ru_utime + after_children.ru_stime)
                - (before_children.ru_utime + before_children.ru_stime)) * args.seconds / (args.seconds + args.warmup)
    executor, selector = services
    cpu = {"selector": after[selector.pid] - before[selector.pid],
           "executor": after[executor.pid] - before[executor.pid], "load (h2load)": load_cpu}
    return ok, failed + errored + timeout, [], cpu


def _python_load(args, ctx, target: str, services) -> tuple[int, int, list[float], dict[str, float]]:
    start, results = ctx.Barrier(args.clients), ctx.Queue()
    loaders = [ctx.Process(target=load_main, args=(target, args.concurrency, args.warmup, args.seconds,
                                                   SLA_MS, start, results, args.load), daemon=True)
               for _ in range(args.clients)]
    for p in loaders:
        p.start()
    # CPU from the window's start (approximately: the load processes sync on a barrier)
    time.sleep(args.warmup + 0.5)
    watched = (*services, *loaders)
    before = {p.pid: cpu_seconds(p.pid) for p in watched}
    reports = [results.get(timeout=args.warmup + args.seconds + 120) for _ in loaders]
    after = {p.pid: cpu_seconds(p.pid) for p in watched}
    for p in loaders:
        p.join(10)
    scale = args.seconds / max(0.1, args.seconds - 0.5)  # the CPU window starts ~0.5 s late
    executor, selector = services
    cpu = {"selector": (after[selector.pid] - before[selector.pid]) * scale,
           "executor": (after[executor.pid] - before[executor.pid]) * scale,
           f"load ({args.load})": sum(after[p.pid] - before[p.pid] for p in loaders) * scale}
    ok = sum(r[0] for r in reports)
    errors = sum(r[1] for r in reports)
    return ok, errors, sorted(x for r in reports for x in r[2]), cpu


if __name__ == "__main__":
    raise SystemExit(main())
