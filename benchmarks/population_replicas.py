"""A client population on real traces through 1 Selector replica and through N: does `risk_aware`
keep its effective accuracy when the clients' requests are spread over replicas?

    python -m benchmarks.population_replicas [--replicas 4] [--clients 1000] [--sla 60]
        [--rate 25] [--duration 75] [--rounds 2] [--sequential] [--network SET/TRACE ...]

Brings the suite up as `modipick up` does (Executor with embedded TensorFlow on the digits pool,
Profiler, Selector: separate processes, on a redis-server of its own, the Selector's defaults:
`risk_aware`, return legs partitioned by client in Redis) and adds N more Selector processes on
the same store and Executor, waits until every model is eligible, then runs two `modipick loadgen
run`s with a population of --clients on the shipped traces (each --network a network class),
outcome reports on: one through the first replica alone, one through the other N (`--target
a,b,...`: every call and every report to the next replica, round robin, the worst case for a
replica's memory of a client). Both use the same seed, so the same arrivals, legs, inputs and
client schedule, with client ids and network classes of their own (nothing one learns helps the
other), and they run **at the same time**: on a shared machine whose load swings from minute to
minute, the two sides meet the same stalls (--sequential runs them one after the other instead:
1, N, and with --rounds 2, N, 1 again). Each population first runs --warmup seconds unmeasured
(the same clients: the replicas' network-class models and the clients' states are warm when the
measured run starts, as in a service that has been up a while; 0 measures from cold, where the
replicas pool their network classes' first legs in Redis until the class models decide). Each round uses the next
seed and new populations. Prints every measured run's effective accuracy and attainment, the p5 /
p50 client, where the decisions' return legs came from (and how many of those went on-device),
and the mean difference N - 1 (target: within 1 point).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile

from benchmarks.selector_overhead import start_redis

TARGET_POINTS = 1.0
NETWORKS = ("lte_mahimahi_short/TMobile-LTE-short", "hsdpa_3g_norway/norway_bus_1")


def loadgen_command(target: str, args: argparse.Namespace, summary: str) -> list[str]:
    from modipick.cli.suite import modipick_command

    command = [*modipick_command("loadgen", "run"), "--target", target, "--mode", "realtime",
               "--clients", str(args.clients), "--zipf-s", str(args.zipf_s), "--compare", "risk_aware",
               "--sla", f"{args.sla:g}", "--request-bytes", str(args.request_bytes),
               "--base-rtt-ms", f"{args.base_rtt_ms:g}", "--rate", f"{args.rate:g}",
               "--duration", f"{args.duration:g}", "--seed", str(args.seed), "--progress", "none",
               "--summary-json", summary]
    if getattr(args, "population_tag", None):
        command += ["--population-tag", args.population_tag]
    for network in args.network or NETWORKS:
        command += ["--network", network]
    return command


def leg_sources(records_path: str) -> dict[str, tuple[float, float]]:
    """Per return-leg source of the decisions answered: (% of them, % of those sent on-device)."""
    import collections

    from modipick.loadgen.records import read_records

    answered = [r for r in read_records(records_path) if r.status == "OK"]
    counts = collections.Counter(r.return_leg_source or "-" for r in answered)
    on_device = collections.Counter(r.return_leg_source or "-" for r in answered if r.disposition == "run_on_device")
    return {source: (100.0 * n / len(answered), 100.0 * on_device[source] / n) for source, n in counts.items()}


def run_loadgen(target: str, args: argparse.Namespace, workdir: str, label: str) -> dict:
    summary = os.path.join(workdir, f"{label}.json")
    records = os.path.join(workdir, f"{label}.csv")
    command = [*loadgen_command(target, args, summary), "--records", records]
    load = os.getloadavg()[0]
    done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if done.returncode not in (0, 99):
        raise SystemExit(f"loadgen failed ({done.returncode}):\n{done.stdout[-3000:]}")
    with open(summary) as fh:
        (run,) = json.load(fh)["runs"]
    run["load_before"], run["load_after"] = load, os.getloadavg()[0]
    run["leg_sources"] = leg_sources(records)
    return run


def _pct(value) -> str:
    return "-" if value is None else f"{value:.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=4)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--zipf-s", type=float, default=1.0)
    parser.add_argument("--network", action="append", default=[],
                        help=f"a trace (`modipick traces list`); repeat (default: {', '.join(NETWORKS)})")
    parser.add_argument("--request-bytes", type=int, default=10_000)
    parser.add_argument("--base-rtt-ms", type=float, default=2.0)
    parser.add_argument("--sla", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=25.0, help="requests per second of each population")
    parser.add_argument("--duration", type=float, default=75.0, help="seconds per run")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each side (seed, seed + 1, ...)")
    parser.add_argument("--warmup", type=float, default=30.0,
                        help="seconds each side's population runs before it is measured (0: measure from cold)")
    parser.add_argument("--sequential", action="store_true",
                        help="one side after the other (1, N, then N, 1) instead of both at once")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.replicas < 2 or args.rounds < 1:
        parser.error("--replicas must be >= 2 and --rounds >= 1")
    from modipick.cli.demo import wait_eligible
    from modipick.cli.suite import Suite, SuiteSettings
    from modipick.runtime.logging import configure_logging
    from modipick.zoo.manifest import read_manifest

    configure_logging(level="warning")
    print(f"load average {os.getloadavg()[0]:.1f} at the start; {args.clients:,} clients on "
          f"{', '.join(args.network or NETWORKS)}, SLA {args.sla:g} ms, {args.rate:g} req/s for "
          f"{args.duration:g} s per run", flush=True)
    results: list[tuple[int, dict]] = []
    with tempfile.TemporaryDirectory() as workdir, open(os.path.join(workdir, "services.log"), "w") as log:
        redis, url = start_redis(workdir)
        try:
            settings = SuiteSettings(selector_port=0, executor_port=0, profiler_port=0, redis_url=url,
                                     threshold_ms=1.0, log_level="warning", child_output=log)

            async def run() -> None:
                async with Suite(settings) as suite:
                    models = len(read_manifest(suite.model_base).models)
                    await wait_eligible(suite.profiler_target, suite.executor_target, models, 300)
                    targets = [suite.selector_target]
                    for _ in range(args.replicas):
                        targets.append(await suite.add_selector())
                    await asyncio.sleep(2.0)  # the new replicas' first profile refresh
                    sides = {1: targets[0], args.replicas: ",".join(targets[1:])}
                    for round_ in range(args.rounds):
                        order = [1, args.replicas] if round_ % 2 == 0 else [args.replicas, 1]
                        print(f"round {round_ + 1}/{args.rounds} (seed {args.seed + round_}) ...", flush=True)

                        def side(n: int, phase: str, duration: float, round_=round_):
                            # a population of its own per side and round, the same in warm-up and measure
                            seeded = argparse.Namespace(**{**vars(args), "seed": args.seed + round_,
                                                           "duration": duration,
                                                           "population_tag": f"r{round_}n{n}"})
                            return asyncio.to_thread(run_loadgen, sides[n], seeded, workdir, f"{phase}{round_}-{n}")

                        phases = ([("warmup", args.warmup)] if args.warmup > 0 else []) + [("run", args.duration)]
                        for phase, duration in phases:
                            if args.sequential:
                                done = [(n, await side(n, phase, duration)) for n in order]
                            else:
                                done = list(zip(order, await asyncio.gather(*(side(n, phase, duration)
                                                                               for n in order))))
                            if phase == "run":
                                results.extend(done)

            asyncio.run(run())
        finally:
            redis.kill()
            redis.wait()
    print(f"\n{'replicas':>8} {'requests':>8} {'eff acc %':>9} {'attain %':>8} {'on-device':>9} {'failed':>6} "
          f"{'client p5/p50 eff acc %':>23} {'own model %':>11} {'clients':>7} {'load avg':>9}")
    for n, r in results:
        print(f"{n:>8} {r['requests']:>8} {_pct(r['effective_accuracy_pct']):>9} {_pct(r['attainment_pct']):>8} "
              f"{r.get('on_device', '-'):>9} {r.get('failed', '-'):>6} "
              f"{_pct(r.get('client_effective_accuracy_p5_pct')) + ' / ' + _pct(r.get('client_effective_accuracy_p50_pct')):>23} "
              f"{_pct(r.get('client_own_model_pct')):>11} {r.get('client_clients', '-'):>7} "
              f"{r['load_before']:>4.1f}-{r['load_after']:.1f}")
        print(f"{'':>8} return leg from: " + ", ".join(
            f"{source} {share:.1f} % (on-device {device:.1f} %)"
            for source, (share, device) in sorted(r["leg_sources"].items())))

    def mean(key: str, n: int) -> float:
        values = [r[key] for m, r in results if m == n and r.get(key) is not None]
        return sum(values) / len(values)

    diff = mean("effective_accuracy_pct", args.replicas) - mean("effective_accuracy_pct", 1)
    print(f"\neffective accuracy, {args.replicas} replicas - 1 replica: {diff:+.2f} points "
          f"(target within {TARGET_POINTS:g}: {'PASS' if abs(diff) <= TARGET_POINTS else 'MISS'}); "
          f"attainment {mean('attainment_pct', args.replicas) - mean('attainment_pct', 1):+.2f} points")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    command = loadgen_command("TARGET", args, "SUMMARY.json")
    print("loadgen command (per run): modipick " + " ".join(command[command.index("loadgen"):]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
