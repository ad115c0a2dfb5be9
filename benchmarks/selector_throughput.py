"""Selector throughput: one Selector replica in front of an Executor that answers at once.

    python -m benchmarks.selector_throughput [--seconds 10] [--clients 2] [--concurrency 32] [--profile]

Three kinds of processes (spawn): the instant Executor, one Selector (memory store with three fixed
eligible profiles; the request path never reads the store anyway), and --clients load processes,
each keeping --concurrency requests in flight through AsyncModiPickClient (8x8 float32 tensor, SLA
1 s, policy modipick). Reports completed requests/s in the measured window, client latency, and
the CPU seconds each process used: the Selector's CPU per request gives its capacity per core,
which a shared machine cannot hide. --profile dumps a cProfile of the Selector and prints the top;
--bare-proxy measures a pass-through proxy in the Selector's place (the floor two grpc.aio hops set).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import pstats
import signal
import statistics
import sys
import tempfile

from benchmarks._suite_procs import bare_proxy_main, cpu_seconds, instant_executor_main, load_main, selector_main

TARGET_RPS = 1500


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--clients", type=int, default=2, help="load processes")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight per load process")
    parser.add_argument("--profile", action="store_true", help="cProfile the Selector process")
    parser.add_argument("--bare-proxy", action="store_true",
                        help="replace the Selector by a pass-through proxy: the grpc.aio floor for comparison")
    args = parser.parse_args(argv)
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = []
    profile_path = tempfile.mktemp(suffix=".prof") if args.profile else None
    try:
        executor = ctx.Process(target=instant_executor_main, args=(queue,), daemon=True)
        executor.start()
        procs.append(executor)
        executor_target = queue.get(timeout=60)
        if args.bare_proxy:
            selector = ctx.Process(target=bare_proxy_main, args=(executor_target, queue), daemon=True)
        else:
            selector = ctx.Process(target=selector_main, args=(executor_target, queue, profile_path), daemon=True)
        selector.start()
        procs.append(selector)
        selector_target = queue.get(timeout=60)
        start, results = ctx.Barrier(args.clients), ctx.Queue()
        loaders = [ctx.Process(target=load_main, args=(selector_target, args.concurrency, args.warmup, args.seconds,
                                                       1000.0, start, results), daemon=True)
                   for _ in range(args.clients)]
        for p in loaders:
            p.start()
        print(f"load: {args.clients} x {args.concurrency} in flight, {args.warmup:g} s warm-up + "
              f"{args.seconds:g} s measured ...", file=sys.stderr)
        cpu_before = {p.pid: 0.0 for p in (executor, selector)}
        reports = []
        for index in range(args.clients):
            if index == 0:
                # sample CPU at the window's start (approximately: the load processes sync on a barrier)
                import time
                time.sleep(args.warmup + 0.5)
                cpu_before = {p.pid: cpu_seconds(p.pid) for p in (executor, selector, *loaders)}
            reports.append(results.get(timeout=args.warmup + args.seconds + 120))
        cpu_after = {p.pid: cpu_seconds(p.pid) for p in (executor, selector, *loaders)}
        for p in loaders:
            p.join(10)
    finally:
        for p in reversed(procs):
            if p.is_alive():
                os.kill(p.pid, signal.SIGTERM)
                p.join(15)
    ok = sum(r[0] for r in reports)
    errors = sum(r[1] for r in reports)
    latencies = sorted(x for r in reports for x in r[2])
    window = min(r[4] for r in reports) - max(r[3] for r in reports)
    rps = ok / args.seconds
    sel_cpu = cpu_after[selector.pid] - cpu_before[selector.pid]
    exe_cpu = cpu_after[executor.pid] - cpu_before[executor.pid]
    load_cpu = sum(cpu_after[p.pid] - cpu_before[p.pid] for p in loaders)
    # the CPU window starts ~0.5 s late; scale to the measured window
    measured_cpu_s = max(0.1, args.seconds - 0.5)
    per_req_us = sel_cpu / max(1, ok * measured_cpu_s / args.seconds) * 1e6
    print(f"requests ok {ok}, errors {errors}, window {window:.1f} s")
    print(f"throughput {rps:,.0f} req/s (target >= {TARGET_RPS:,}): {'PASS' if rps >= TARGET_RPS else 'SHORT'}")
    if latencies:
        q = statistics.quantiles(latencies, n=100)
        print(f"client latency ms: p50 {q[49]:.2f}  p90 {q[89]:.2f}  p99 {q[98]:.2f}")
    print(f"CPU in window: selector {sel_cpu:.2f} s ({sel_cpu / measured_cpu_s:.0%} of a core), "
          f"executor {exe_cpu:.2f} s ({exe_cpu / measured_cpu_s:.0%}), "
          f"load clients {load_cpu:.2f} s ({load_cpu / measured_cpu_s:.0%})")
    served = max(1, ok * measured_cpu_s / args.seconds)
    print("CPU per request us: " + ", ".join(
        f"{name} {cpu / served * 1e6:.0f}" for name, cpu in
        (("selector", sel_cpu), ("executor", exe_cpu), ("load clients", load_cpu),
         ("all", sel_cpu + exe_cpu + load_cpu))))
    print(f"selector CPU per request ~ {per_req_us:.0f} us -> ~{1e6 / per_req_us:,.0f} req/s per dedicated core")
    print(f"machine: nproc {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}")
    if profile_path and os.path.exists(profile_path):
        stats = pstats.Stats(profile_path)
        stats.sort_stats("tottime").print_stats(25)
        os.environ.get("KEEP_PROFILE") or os.unlink(profile_path)
        print("profile", profile_path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
