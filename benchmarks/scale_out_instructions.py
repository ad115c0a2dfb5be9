"""Scale-out in instructions: the Selector's work per request at 1 replica and at N, counted by
callgrind instead of timed, so that N processes sharing a machine's few cores (colder caches, more
context switches) do not pass for work that grows with the fleet.

    python -m benchmarks.scale_out_instructions [--replicas 8] [--clients 10000] [--requests 300]
                                                [--in-flight 3] [--sharing partitioned]

Processes: a redis-server of its own, the Executor on a backend whose models answer at once and
the Profiler (both as `benchmarks.scale_out` starts them), and N Selector replicas (`python -m
modipick.selector`, `--return-leg-sharing` as given) each under `valgrind --tool=callgrind`, with
instrumentation switched on only once they serve. The population and its reports are
`benchmarks.scale_out`'s (Zipf(1) activity over --clients, four network classes, each Infer
followed by a ReportOutcome echoing the ticket). Every replica gets the same load whatever N is:
--requests requests with --in-flight of them in flight per serving replica, through a balancer
that spreads (every call and every report to a random replica) or sticks (a client to one
replica).

For each configuration: `callgrind_control --zero` on the serving replicas, the load, then
`--dump`; the instructions each replica ran, less its idle rate (measured the same way over a
silent window: profile refreshes, health polls) times the window, summed over the serving
replicas and divided by the requests served, are the instructions per request (its decision and
its report). The ratio N / 1 is the scale-out target's (within 15 %) in instructions. Slow: each
replica runs ~50x slower under callgrind; the run takes a few minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import multiprocessing
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from benchmarks._suite_procs import instant_executor_main
from benchmarks.scale_out import (SHARINGS, Population, _free_port, drive, profiler_main, spawner,
                                  start_redis_with_profiles, stop_processes)

SLA_MS = 30_000.0  # a request under callgrind takes tens of ms; the budget must not shape the decision
TARGET_RATIO = 1.15


def _callgrind(*args: str) -> None:
    subprocess.run(["callgrind_control", *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=120)


def _dumped_instructions(outdir: str, pid: int) -> int:
    """Instructions in the newest dump of `pid` (callgrind's `summary:` line)."""
    newest = max(glob.glob(os.path.join(outdir, f"callgrind.{pid}.*")), key=os.path.getmtime)
    with open(newest) as fh:
        for line in fh:
            if line.startswith("summary:"):
                return int(line.split()[1])
    raise RuntimeError(f"no summary in {newest}")


def _window(outdir: str, pids: list[int], run) -> tuple[dict[int, int], float, object]:
    """Zero the replicas' counters, run `run()`, dump: instructions per pid, the window's seconds, what run returned."""
    for pid in pids:
        _callgrind("--zero", str(pid))
    t0 = time.monotonic()
    result = run()
    wall = time.monotonic() - t0
    for pid in pids:
        _callgrind("--dump", str(pid))
    return {pid: _dumped_instructions(outdir, pid) for pid in pids}, wall, result


async def _wait_serving(target: str, timeout_s: float) -> None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from modipick.runtime.channels import aio_channel

    deadline = time.monotonic() + timeout_s
    async with aio_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"Selector at {target} did not serve within {timeout_s:.0f} s")
            await asyncio.sleep(1.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=8, help="the fleet compared with 1 replica")
    parser.add_argument("--clients", type=int, default=10_000, help="population size")
    parser.add_argument("--requests", type=int, default=300, help="requests per serving replica and configuration")
    parser.add_argument("--in-flight", type=int, default=3, help="requests in flight per serving replica")
    parser.add_argument("--warmup", type=int, default=100, help="unmeasured requests per replica first")
    parser.add_argument("--idle-s", type=float, default=10.0, help="the silent window for the idle rate")
    parser.add_argument("--sharing", choices=SHARINGS, default="partitioned")
    parser.add_argument("--profile-refresh-ms", type=float, default=30_000.0,
                        help="the replicas' profile refresh: the profiles do not change during the run, and a "
                             "read every 0.5 s (the default's) is per-second work the idle rate has to remove")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.replicas < 2 or args.requests < 1 or args.in_flight < 1:
        parser.error("--replicas must be >= 2, --requests and --in-flight >= 1")
    missing = [tool for tool in ("redis-server", "valgrind", "callgrind_control") if not shutil.which(tool)]
    if missing:
        print(f"missing: {', '.join(missing)} (apt-get install redis-server valgrind)", file=sys.stderr)
        return 2
    workdir = tempfile.mkdtemp(prefix="modipick-scale-instr-")
    redis_proc, url = start_redis_with_profiles(workdir)
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs: list = []
    selectors: list[subprocess.Popen] = []
    rng = random.Random(args.seed)
    print(f"load average {os.getloadavg()[0]:.1f}; {args.replicas} replicas under callgrind, sharing "
          f"{args.sharing}, {args.clients:,} clients, {args.requests} requests per serving replica, "
          f"{args.in_flight} in flight each", flush=True)
    try:
        spawn = spawner(ctx, queue, procs)
        _, executor_target = spawn(instant_executor_main)
        _, profiler_target = spawn(profiler_main, url, executor_target)
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
        targets = []
        for _ in range(args.replicas):
            target = f"127.0.0.1:{_free_port()}"
            selectors.append(subprocess.Popen(
                ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                 f"--callgrind-out-file={workdir}/callgrind.%p", sys.executable, "-m", "modipick.selector",
                 "--listen", target, "--redis-url", url, "--executor-target", executor_target,
                 "--profiler-target", profiler_target, "--return-leg-sharing", args.sharing,
                 "--profile-refresh-ms", str(args.profile_refresh_ms), "--log-level", "warning", "--grace-s", "0.2"],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            targets.append(target)
        started = time.monotonic()
        for i, target in enumerate(targets):
            asyncio.run(_wait_serving(target, 900.0))
            print(f"replica {i + 1}/{len(targets)} serving ({time.monotonic() - started:.0f} s)", flush=True)
        pids = [p.pid for p in selectors]
        population = Population(args.clients, rng)
        asyncio.run(drive(targets, population, spread=True, requests=args.warmup * len(targets),
                          concurrency=args.in_flight * len(targets), rng=rng, sla_ms=SLA_MS))
        for pid in pids:
            _callgrind("--instr=on", str(pid))
        asyncio.run(drive(targets, population, spread=True, requests=10 * len(targets),
                          concurrency=args.in_flight * len(targets), rng=rng, sla_ms=SLA_MS))  # the instrumented code paths, warm

        idle, idle_s, _ = _window(workdir, pids, lambda: time.sleep(args.idle_s))
        idle_rate = {pid: idle[pid] / idle_s for pid in pids}
        print(f"fleet silent: {sum(idle_rate.values()) / len(pids) / 1e6:.2f} M instructions/s per replica", flush=True)
        per_request: dict[tuple[int, str], float] = {}
        print(f"\n{'replicas':>8} {'balancer':>8} {'served':>7} {'errors':>6} {'window s':>8} "
              f"{'instr/req (k)':>13} {'net of idle (k)':>15}")
        for balancer in ("spread", "sticky"):
            for n in (1, args.replicas):
                used = pids[:n]
                counts, wall, stats = _window(workdir, used, lambda: asyncio.run(drive(
                    targets[:n], population, spread=balancer == "spread", requests=args.requests * n,
                    concurrency=args.in_flight * n, rng=rng, sla_ms=SLA_MS)))
                ok = max(1, stats["ok"])
                gross = sum(counts.values()) / ok
                net = sum(counts[pid] - idle_rate[pid] * wall for pid in used) / ok
                per_request[(n, balancer)] = net
                per_request[(n, balancer + " gross")] = gross
                print(f"{n:>8} {balancer:>8} {stats['ok']:>7} {stats['errors']:>6} {wall:>8.1f} "
                      f"{gross / 1e3:>13.0f} {net / 1e3:>15.0f}", flush=True)
        for balancer in ("spread", "sticky"):
            gross = per_request[(args.replicas, balancer + " gross")] / per_request[(1, balancer + " gross")]
            ratio = per_request[(args.replicas, balancer)] / per_request[(1, balancer)]
            print(f"Selector instructions per request, {args.replicas} replicas / 1 ({balancer}): {gross:.3f}, "
                  f"net of idle {ratio:.3f} (target <= {TARGET_RATIO}: {'PASS' if ratio <= TARGET_RATIO else 'MISS'})")
    finally:
        for p in selectors:
            p.send_signal(signal.SIGTERM)
        for p in selectors:
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
        stop_processes(procs, redis_proc)
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
