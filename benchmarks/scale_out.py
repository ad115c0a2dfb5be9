"""Scale-out: 1, 2, 4, 8 Selector replicas sharing one Redis, with a population of clients reporting
their outcomes, and one replica left idle.

    python -m benchmarks.scale_out [--clients 10000] [--seconds 8] [--concurrency 24]
                                   [--rate-per-replica 0] [--sharing partitioned|store|local[,...]]
                                   [--replicas 1,2,4,8]

Processes (spawn): a redis-server of its own (its INFO is this benchmark's alone), the Executor on
a backend whose models answer at once, one Profiler (outcome reports), 8 Selector replicas
(`--return-leg-sharing` as given: `partitioned` keeps each client's return-leg model in Redis,
`store` replays the Profiler's stream of every report in every replica). The load runs here: each
request is from a client drawn Zipf(1) from the population (its network class and its own return
leg: the leg is added to the measured end-to-end time it reports), an Infer with the SLA as its
deadline and a ReportOutcome echoing the ticket, through a balancer that

  * spreads: every request and every report to a random replica (the worst case for a replica's
    memory of a client), or
  * sticks: a client's requests and reports to one replica (hash of its id).

Per replica count and balancer: requests/s, Selector CPU per request (decision + its report, from
/proc/<pid>/stat of the serving replicas), Redis CPU per request, Redis round trips per request
(INFO stats total_commands_processed) and commands per request (INFO commandstats, commands run
inside Lua scripts included), and the share of decisions that used the client's own model among
those for clients that had >= 20 reports (counted over the whole run: the population keeps
learning from one configuration to the next). Then the idle-replica test: 8 replicas, 7 serving,
the idle one's CPU while they serve against its CPU with the fleet silent. Last, Redis memory per
client key. The CPU ratios (8 replicas vs 1) compare runs of the same process, machine and load;
`--sharing partitioned,local` measures the design and the nothing-shared floor in one invocation
(each on a fresh Redis and fleet, one after the other) and prints their ratios side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import math
import multiprocessing
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from benchmarks._suite_procs import FIXED_PROFILES, cpu_seconds, instant_executor_main

SLA_MS = 1000.0
OWN_AFTER = 20          # reports a client has before its decisions count in the own-model share
SHARINGS = ("partitioned", "store", "local")
CLASSES = (("wifi", 20.0), ("lte", 60.0), ("5g", 35.0), ("3g", 180.0))  # class, typical return leg ms


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def profiler_main(redis_url: str, executor_target: str, queue) -> None:
    from modipick.profiler.app import ProfilerSettings, start_profiler
    from modipick.runtime.event_loop import run_on
    from modipick.runtime.logging import configure_logging
    from modipick.runtime.server import run_until_signal

    configure_logging(json=True, level="warning")

    async def serve() -> None:
        app = await start_profiler(ProfilerSettings(store_url=redis_url, executor_target=executor_target,
                                                    discover=False, grace_s=0.2))
        queue.put(app.target)
        await run_until_signal(app.server, on_shutdown=lambda: app.stop(0))

    run_on("auto", serve)


def replica_main(redis_url: str, executor_target: str, profiler_target: str, sharing: str, queue) -> None:
    from modipick.runtime.event_loop import run_on
    from modipick.runtime.logging import configure_logging
    from modipick.runtime.server import run_until_signal
    from modipick.selector.app import SelectorSettings, start_selector
    from modipick.selector.returnlegs import ReturnLegSettings

    configure_logging(json=True, level="warning")

    async def serve() -> None:
        app = await start_selector(SelectorSettings(
            store_url=redis_url, executor_target=executor_target, profiler_target=profiler_target,
            return_legs=ReturnLegSettings(sharing=sharing), grace_s=0.2))
        queue.put(app.target)
        await run_until_signal(app.server, on_shutdown=lambda: app.stop(0))

    run_on("auto", serve)


class Population:
    """Clients with Zipf(1) activity, a network class and a return leg of their own."""

    def __init__(self, size: int, rng: random.Random) -> None:
        self.ids = [f"{CLASSES[i % len(CLASSES)][0]}/phone-{i}" for i in range(size)]
        self.legs_ms = [CLASSES[i % len(CLASSES)][1] * rng.lognormvariate(0.0, 0.4) for i in range(size)]
        cum, total = [], 0.0
        for rank in range(1, size + 1):
            total += 1.0 / rank
            cum.append(total)
        self._cum, self._total = cum, total
        self.reports = [0] * size

    def draw(self, rng: random.Random) -> int:
        return min(len(self._cum) - 1, bisect.bisect_left(self._cum, rng.random() * self._total))


async def drive(targets: list[str], population: Population, *, spread: bool, concurrency: int, rng: random.Random,
                seconds: float | None = None, requests: int | None = None, sla_ms: float = SLA_MS,
                rate: float = 0.0) -> dict:
    """Infers (each served one followed by its report) with `concurrency` in flight over `targets`,
    for `seconds` or until `requests` were sent, whichever comes first; `rate` > 0 paces their
    starts at that many per second in all (at most `concurrency` in flight still)."""
    import grpc

    from modipick.runtime.channels import aio_channel
    from modipick.v1 import common_pb2, selector_pb2, selector_pb2_grpc

    channels = [aio_channel(t) for t in targets]
    stubs = [selector_pb2_grpc.SelectorServiceStub(c) for c in channels]
    tensor = common_pb2.Input(tensor=common_pb2.Tensor(dtype="float32", shape=[1, 8, 8, 1], content=bytes(256)))
    n = len(stubs)
    stats = {"ok": 0, "errors": 0, "own": 0, "eligible": 0, "clients": set()}
    ids = iter(range(1 << 62 if requests is None else requests))
    stop_at = math.inf if seconds is None else time.monotonic() + seconds
    timeout_s, report_timeout_s = sla_ms / 1000.0, max(2.0, sla_ms / 1000.0)
    next_start = [time.monotonic()]

    async def worker() -> None:
        for i in ids:
            if rate > 0:
                start, next_start[0] = next_start[0], next_start[0] + 1.0 / rate
                if start > time.monotonic():
                    await asyncio.sleep(start - time.monotonic())
            if time.monotonic() >= stop_at:
                break
            c = population.draw(rng)
            cid = population.ids[c]
            pick = rng.randrange(n) if spread else hash(cid) % n
            rid = f"so-{i}"
            had = population.reports[c]
            began = time.perf_counter()
            try:
                reply = await stubs[pick].Infer(selector_pb2.InferRequest(
                    request_id=rid, sla_ms=sla_ms, client_id=cid, input=tensor), timeout=timeout_s)
            except grpc.aio.AioRpcError:
                stats["errors"] += 1
                continue
            e2e = (time.perf_counter() - began) * 1000.0 + population.legs_ms[c] * rng.lognormvariate(0.0, 0.15)
            stats["ok"] += 1
            stats["clients"].add(c)
            if had >= OWN_AFTER:
                stats["eligible"] += 1
                stats["own"] += reply.return_leg_source == selector_pb2.RETURN_LEG_SOURCE_CLIENT
            if reply.disposition != selector_pb2.DISPOSITION_SERVED:
                continue
            report_to = rng.randrange(n) if spread else pick
            try:
                await stubs[report_to].ReportOutcome(selector_pb2.ReportOutcomeRequest(
                    request_id=rid, model=reply.model, e2e_ms=e2e, sla_ms=sla_ms, client_id=cid,
                    predicted_label=reply.prediction.label, ticket=reply.ticket), timeout=report_timeout_s)
                population.reports[c] += 1
            except grpc.aio.AioRpcError:
                stats["errors"] += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    for channel in channels:
        await channel.close()
    stats["clients"] = len(stats["clients"])
    return stats


def start_redis_with_profiles(workdir: str) -> tuple[subprocess.Popen, str]:
    """A redis-server of its own (its INFO is the benchmark's alone) holding FIXED_PROFILES, eligible."""
    import redis

    from modipick.core import ModelProfile
    from modipick.stores import make_store

    port = _free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", workdir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    with redis.Redis.from_url(url) as r:
        for _ in range(100):
            try:
                r.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
    store = make_store(url)
    for name, acc, mean, std in FIXED_PROFILES:
        store.register(ModelProfile.from_stats(name, acc, mean, std, samples=100))
    store.close()
    return proc, url


def spawner(ctx, queue, procs: list):
    """spawn(target, *args): start `target(*args, queue)` in a spawned process (kept in `procs`) and
    return what it puts on the queue first (its address)."""
    def spawn(target, *args):
        p = ctx.Process(target=target, args=(*args, queue), daemon=True)
        p.start()
        procs.append(p)
        return p, queue.get(timeout=120)

    return spawn


def stop_processes(procs: list, redis_proc: subprocess.Popen) -> None:
    """Stop the spawned processes (last started first), then the benchmark's redis-server."""
    for p in reversed(procs):
        if p.is_alive():
            os.kill(p.pid, signal.SIGTERM)
            p.join(10)
    redis_proc.kill()
    redis_proc.wait(10)


def _redis_counts(client) -> dict[str, int]:
    """Commands run, by name (INFO commandstats: those run inside Lua scripts included)."""
    return {k.removeprefix("cmdstat_"): v["calls"] for k, v in client.info("commandstats").items()}


def _per_request(before: dict[str, int], after: dict[str, int], ok: int) -> tuple[float, float, str]:
    """(round trips: commands clients sent, all commands, the busiest commands) per request."""
    delta = {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0) > 0}
    delta.pop("info", None)  # this benchmark's own reads
    # Sent by clients: the decisions' GETs and every EVALSHA. Inside the scripts: each client-state
    # script's one GET and its SET, a class push's RPUSH, LTRIM and PEXPIRE, the profile read's
    # SMEMBERS and HGETALLs, the outcome's EXISTS and HINCRBYs. So sent = GET - client-state
    # scripts + EVALSHA = GET + SMEMBERS (one per profile read) + LTRIM (one per class push) +
    # anything else sent.
    inner = {"get", "set", "exists", "hincrby", "hgetall", "smembers", "evalsha", "hset", "rpush", "ltrim", "pexpire"}
    sent = (delta.get("get", 0) + delta.get("smembers", 0) + delta.get("ltrim", 0)
            + sum(v for k, v in delta.items() if k not in inner))
    top = sorted(delta.items(), key=lambda kv: -kv[1])[:5]
    return sent / ok, sum(delta.values()) / ok, " ".join(f"{k} {v / ok:.2f}" for k, v in top)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=10_000, help="population size")
    parser.add_argument("--seconds", type=float, default=8.0, help="measured window per configuration")
    parser.add_argument("--concurrency", type=int, default=24, help="requests in flight")
    parser.add_argument("--rate-per-replica", type=float, default=0.0,
                        help="requests per second per serving replica (0: as fast as --concurrency allows); "
                             "the same rate at 1 and at N replicas compares processes that idle alike")
    parser.add_argument("--replicas", default="1,2,4,8")
    parser.add_argument("--sharing", default="partitioned",
                        help="partitioned, store (the replicated stream, the comparison) or local (nothing shared, "
                             "the floor); several, comma-separated, run one after the other (a fresh Redis and "
                             "fleet each) and their CPU ratios are compared at the end")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    counts = sorted({int(x) for x in args.replicas.split(",")})
    sharings = [x.strip() for x in args.sharing.split(",") if x.strip()]
    unknown = [x for x in sharings if x not in SHARINGS]
    if not sharings or unknown:
        parser.error(f"--sharing: one or more of {', '.join(SHARINGS)}, got {args.sharing!r}")
    if not shutil.which("redis-server"):
        print("redis-server is missing (apt-get install redis-server)", file=sys.stderr)
        return 2
    ratios = {sharing: run_sharing(sharing, args, counts) for sharing in sharings}
    if len(sharings) > 1 and counts[0] == 1 and counts[-1] > 1:
        print(f"\nSelector CPU per request, {counts[-1]} replicas / 1, same invocation "
              f"(load average {os.getloadavg()[0]:.1f} at the end):")
        for balancer in ("spread", "sticky", "spread net", "sticky net"):
            line = ", ".join(f"{sharing} {r[(counts[-1], balancer)] / r[(1, balancer)]:.2f}"
                             for sharing, r in ratios.items())
            print(f"  {balancer:>10}: {line}")
    return 0


def run_sharing(sharing: str, args: argparse.Namespace, counts: list[int]) -> dict[tuple[int, str], float]:
    """Every configuration of one sharing mode on a fresh Redis and fleet: Selector CPU per request
    by (replicas, balancer)."""
    fleet = max(8, counts[-1])
    import redis

    pace = f", {args.rate_per_replica:g} req/s per serving replica" if args.rate_per_replica > 0 else ""
    print(f"load average {os.getloadavg()[0]:.1f}; {args.clients:,} clients, sharing {sharing}, "
          f"{args.concurrency} in flight{pace}, {args.seconds:g} s per configuration", flush=True)
    workdir = tempfile.TemporaryDirectory(prefix="modipick-scale-")
    redis_proc, url = start_redis_with_profiles(workdir.name)
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = []
    rng = random.Random(args.seed)
    try:
        r = redis.Redis.from_url(url)
        spawn = spawner(ctx, queue, procs)
        _, executor_target = spawn(instant_executor_main)
        _, profiler_target = spawn(profiler_main, url, executor_target)
        replicas = [spawn(replica_main, url, executor_target, profiler_target, sharing) for _ in range(fleet)]
        pids, targets = [p.pid for p, _ in replicas], [t for _, t in replicas]
        population = Population(args.clients, rng)
        # warm-up: connections, code paths (not measured)
        asyncio.run(drive(targets, population, spread=True, seconds=2.0, concurrency=args.concurrency, rng=rng))

        def measure(active: list[int], spread: bool, seconds: float, paced: bool = True) -> dict:
            cpu0 = {i: cpu_seconds(pids[i]) for i in range(fleet)}
            redis_cpu0 = cpu_seconds(redis_proc.pid)
            commands0 = _redis_counts(r)
            t0 = time.monotonic()
            if active:
                stats = asyncio.run(drive([targets[i] for i in active], population, spread=spread,
                                          seconds=seconds, concurrency=args.concurrency, rng=rng,
                                          rate=args.rate_per_replica * len(active) if paced else 0.0))
            else:
                time.sleep(seconds)
                stats = {"ok": 0, "errors": 0, "own": 0, "eligible": 0, "clients": 0}
            stats["wall"] = time.monotonic() - t0
            commands1 = _redis_counts(r)
            stats["cpu"] = {i: cpu_seconds(pids[i]) - cpu0[i] for i in range(fleet)}
            stats["redis_cpu"] = cpu_seconds(redis_proc.pid) - redis_cpu0
            stats["round_trips"], stats["commands"], stats["top"] = _per_request(commands0, commands1,
                                                                                 max(1, stats["ok"]))
            return stats

        silent = measure([], False, args.seconds)  # every replica's own background work (profile reads, health)
        idle_rate = {i: silent["cpu"][i] / silent["wall"] for i in range(fleet)}
        print(f"fleet silent: {sum(idle_rate.values()) / fleet * 1e3:.1f} ms CPU/s per replica")
        print(f"\n{'replicas':>8} {'balancer':>8} {'req/s':>7} {'sel CPU us/req':>14} {'net of idle':>11} "
              f"{'redis CPU us/req':>16} "
              f"{'round trips/req':>15} {'cmds/req':>8} {'own model (>=20 reports)':>24} {'clients':>8}")
        per_request: dict[tuple[int, str], float] = {}
        for balancer in ("spread", "sticky"):
            for n in counts:
                s = measure(list(range(n)), balancer == "spread", args.seconds)
                ok = max(1, s["ok"])
                sel = sum(s["cpu"][i] for i in range(n)) / ok * 1e6
                net = (sum(s["cpu"][i] - idle_rate[i] * s["wall"] for i in range(n))) / ok * 1e6
                per_request[(n, balancer)] = sel
                per_request[(n, balancer + " net")] = net
                own = f"{s['own'] / s['eligible']:.1%} of {s['eligible']}" if s["eligible"] else "-"
                print(f"{n:>8} {balancer:>8} {s['ok'] / s['wall']:>7.0f} {sel:>14.0f} {net:>11.0f} "
                      f"{s['redis_cpu'] / ok * 1e6:>16.0f} {s['round_trips']:>15.2f} {s['commands']:>8.2f} "
                      f"{own:>24} {s['clients']:>8}   [{s['top']}]", flush=True)
        for balancer in ("spread", "sticky", "spread net", "sticky net"):
            if (1, balancer) in per_request and (counts[-1], balancer) in per_request:
                ratio = per_request[(counts[-1], balancer)] / per_request[(1, balancer)]
                print(f"Selector CPU per request, {counts[-1]} replicas / 1 ({balancer}): {ratio:.2f} "
                      f"(target <= 1.15: {'PASS' if ratio <= 1.15 else 'MISS'})")

        idle = fleet - 1
        busy = measure(list(range(fleet - 1)), True, args.seconds, paced=False)  # as many req/s as it takes
        quiet_ms = silent["cpu"][idle] / silent["wall"] * 1e3
        busy_ms = busy["cpu"][idle] / busy["wall"] * 1e3
        print(f"\nidle replica ({fleet - 1} others serving {busy['ok'] / busy['wall']:.0f} req/s from "
              f"{busy['clients']:,} clients, each reporting): {busy_ms:.1f} ms CPU/s, fleet silent: "
              f"{quiet_ms:.1f} ms CPU/s (difference {busy_ms - quiet_ms:+.1f} ms CPU/s)")

        keys = r.keys("modipick:{client:*}:leg")
        if keys:
            sample = keys[:: max(1, len(keys) // 200)]
            usage = sum(r.memory_usage(k) for k in sample) / len(sample)
            size = sum(r.strlen(k) for k in sample) / len(sample)
            full = max(keys[:2000], key=r.strlen)
            print(f"client keys {len(keys):,}: value {size:.0f} B, MEMORY USAGE {usage:.0f} B per key on average; "
                  f"a full window: value {r.strlen(full)} B, MEMORY USAGE {r.memory_usage(full)} B; "
                  f"Redis used_memory {r.info('memory')['used_memory'] / 1e6:.1f} MB")
    finally:
        stop_processes(procs, redis_proc)
        workdir.cleanup()
    return per_request


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
