"""What one compact per-client record costs in Redis: memory per key, server CPU per command, the
round trip a decision would pay, and throughput on this machine (docs/scaling.md's capacity model).

    python -m benchmarks.client_state_cost [--clients 100000] [--sizes 256,600,1024] [--calls 20000]

Starts its own redis-server on a free port (no persistence). Keys look like the per-client records
the plan describes: "{c:<class>/<id>}:rl", a string value of the given size, with a TTL. A diagnostic
(no target): run it by name.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import redis
import redis.asyncio as aredis

from benchmarks.profile_updates import start_redis

TTL_S = 7 * 24 * 3600
# read-modify-write of one record in one round trip: what a report's update would run
UPDATE = """
local old = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return old and #old or 0
"""


def key(i: int) -> str:
    return f"{{c:lte/{i:08d}}}:rl"


def memory_per_key(client: redis.Redis, clients: int, size: int) -> float:
    client.flushall()
    before = client.info("memory")["used_memory"]
    value = b"x" * size
    with client.pipeline(transaction=False) as pipe:
        for i in range(clients):
            pipe.set(key(i), value, ex=TTL_S)
            if i % 1000 == 999:
                pipe.execute()
        pipe.execute()
    after = client.info("memory")["used_memory"]
    return (after - before) / clients


def server_usec_per_call(client: redis.Redis, calls: int, size: int) -> dict[str, float]:
    """Server time per command from INFO commandstats (pipelined, so the client is not measured)."""
    value = b"y" * size
    update = client.register_script(UPDATE)
    update(keys=[key(0)], args=[value, TTL_S])  # load it
    client.config_resetstat()
    with client.pipeline(transaction=False) as pipe:
        for i in range(calls):
            pipe.get(key(i))
            pipe.set(key(i), value, ex=TTL_S)
            update(keys=[key(i)], args=[value, TTL_S], client=pipe)
            if i % 500 == 499:
                pipe.execute()
        pipe.execute()
    stats = client.info("commandstats")
    return {name: float(stats[f"cmdstat_{name}"]["usec_per_call"]) for name in ("get", "set", "evalsha")
            if f"cmdstat_{name}" in stats}


async def round_trips(url: str, calls: int, size: int) -> tuple[float, float, float]:
    """One GET at a time from redis.asyncio, as a decision would: (p50 ms, p99 ms, client CPU µs per call)."""
    client = aredis.Redis.from_url(url)
    await client.set(key(1), b"z" * size, ex=TTL_S)
    for _ in range(200):
        await client.get(key(1))
    latencies = []
    cpu0 = time.process_time()
    for i in range(calls):
        t0 = time.perf_counter()
        await client.get(key(i % 1000))
        latencies.append((time.perf_counter() - t0) * 1000.0)
    cpu = (time.process_time() - cpu0) / calls * 1e6
    await client.aclose()
    latencies.sort()
    return statistics.median(latencies), latencies[int(0.99 * len(latencies))], cpu


def redis_benchmark(port: int, size: int, pipeline: int) -> dict[str, float]:
    binary = shutil.which("redis-benchmark")
    if binary is None:
        return {}
    done = subprocess.run([binary, "-p", str(port), "-t", "get,set", "-d", str(size), "-n", "50000", "-c", "20",
                           "-P", str(pipeline), "-r", "100000", "-q"], capture_output=True, text=True, timeout=300)
    rates = {}
    for line in done.stdout.replace("\r", "\n").splitlines():
        name, _, rest = line.partition(":")
        if name.strip() in ("SET", "GET") and "requests per second" in rest:
            rates[name.strip()] = float(rest.split()[0])
    return rates


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.client_state_cost", description=__doc__)
    parser.add_argument("--clients", type=int, default=100_000)
    parser.add_argument("--sizes", default="256,600,1024")
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; redis-server "
          f"{subprocess.run(['redis-server', '--version'], capture_output=True, text=True).stdout.split()[2]}")
    with tempfile.TemporaryDirectory() as workdir:
        proc, url = start_redis(workdir)
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        client = redis.Redis.from_url(url)
        try:
            for size in sizes:
                per_key = memory_per_key(client, args.clients, size)
                usec = server_usec_per_call(client, min(args.calls, args.clients), size)
                p50, p99, cpu = asyncio.run(round_trips(url, args.calls, size))
                single, piped = redis_benchmark(port, size, 1), redis_benchmark(port, size, 16)
                print(f"record {size:5d} B: memory {per_key:7.0f} B/key ({args.clients} keys with TTL); server "
                      + ", ".join(f"{k.upper()} {v:.2f} µs" for k, v in usec.items())
                      + f"; asyncio GET round trip p50 {p50:.3f} ms p99 {p99:.3f} ms, client CPU {cpu:.0f} µs/call"
                      + (f"; redis-benchmark GET {single.get('GET', 0):,.0f}/s SET {single.get('SET', 0):,.0f}/s "
                         f"(-P 16: GET {piped.get('GET', 0):,.0f}/s SET {piped.get('SET', 0):,.0f}/s)"
                         if single else ""), flush=True)
        finally:
            client.close()
            proc.kill()
            proc.wait(timeout=10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
