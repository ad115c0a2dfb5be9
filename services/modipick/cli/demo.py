"""`modipick demo`: bring the suite up, then send real labelled digits through it at a few SLAs.

Each request is a held-out scikit-learn digit the models never trained on. The client emulates a
mobile network: it stamps the send time, sleeps an upload leg drawn from a network profile, sends,
and sleeps a return leg after the reply, so the Selector sees a real upload delay and the client
measures real end-to-end time. SLAs are placed from the profiles the Profiler learned during
warm-up so that the choice visibly moves from the fastest to the most accurate model; per SLA the
demo prints SLA attainment, measured accuracy and the model mix. Everything is torn down at exit.
"""

from __future__ import annotations

import asyncio
import collections
import math
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field

NETWORKS = {  # one-way leg, ms (paper networks.csv; "perfect" = its figure 7 start, CV 0%)
    "perfect": (50.0, 0.0), "artificial": (50.0, 25.0), "campus_wifi": (57.87, 30.79), "home": (92.02, 48.38),
    "lan": (10.0, 1.0)}


@dataclass
class SlaReport:
    sla_ms: float
    sent: int = 0
    served: int = 0
    on_device: int = 0
    errors: collections.Counter = field(default_factory=collections.Counter)
    met: int = 0
    correct: int = 0
    mix: collections.Counter = field(default_factory=collections.Counter)
    e2e: list[float] = field(default_factory=list)
    budgets: list[float] = field(default_factory=list)

    def line(self, accuracy: dict[str, float]) -> str:
        attain = self.met / self.sent if self.sent else 0.0
        acc = f"{self.correct / self.served:6.1%}" if self.served else "     -"  # nothing served here
        mix = ", ".join(f"{name} {n / self.sent:.0%}" for name, n in sorted(
            self.mix.items(), key=lambda kv: accuracy.get(kv[0], 0)))
        errors = f"; errors {dict(self.errors)}" if self.errors else ""
        p50 = f"{sorted(self.e2e)[len(self.e2e) // 2]:6.1f}" if self.e2e else "     -"
        budget = sorted(self.budgets)[len(self.budgets) // 2] if self.budgets else float("nan")
        return (f"attainment {attain:6.1%} | accuracy {acc} | budget p50 {budget:5.1f} ms | "
                f"e2e p50 {p50} ms | mix: {mix or '-'}{errors}")


def place_slas(profiles: list, upload_ms: float, overhead_ms: float, threshold_ms: float) -> list[float]:
    """A ladder over the learned profiles, on top of what every request spends outside the model
    (upload and return legs as the Selector measures them, plus the serving overhead): one SLA
    where even the fastest model cannot fit, budgets aimed at the fastest, a middle and the most
    accurate model, and a generous one."""
    by_speed = sorted(profiles, key=lambda p: p.mean_ms)
    fastest, middle = by_speed[0], by_speed[len(by_speed) // 2]
    best = max(profiles, key=lambda p: (p.declared_accuracy, -p.mean_ms))
    # the first is below zero by more than the measured upload's jitter (~1 ms either way here): at
    # half the fastest model's time it was a coin toss, which the Selector then served or missed
    budgets = [-2.0,
               fastest.mean_ms + threshold_ms + 2 * fastest.std_ms + 0.5,
               middle.mean_ms + threshold_ms + 2 * middle.std_ms + 0.5,
               best.mean_ms + threshold_ms + 2 * best.std_ms + 1.0,
               best.mean_ms + threshold_ms + 2 * best.std_ms + 20.0]
    return [math.ceil((2 * upload_ms + overhead_ms + b) * 10) / 10 for b in budgets]


async def wait_eligible(profiler_target: str, executor_target: str, expected: int, timeout_s: float) -> list:
    """The profiles once every model is eligible and the Executor has it loaded. Profiles kept in
    Redis from an earlier run read eligible before the Profiler has seen that this Executor is
    still loading (a second `make demo` once sent its first requests into LOADING models)."""
    import grpc

    from modipick.v1 import common_pb2, executor_pb2, executor_pb2_grpc, profiler_pb2, profiler_pb2_grpc

    deadline = time.monotonic() + timeout_s
    shown = -1
    async with grpc.aio.insecure_channel(profiler_target) as channel, \
            grpc.aio.insecure_channel(executor_target) as executor_channel:
        stub = profiler_pb2_grpc.ProfilerServiceStub(channel)
        executor = executor_pb2_grpc.ExecutorServiceStub(executor_channel)
        while True:
            reply = await stub.ListProfiles(profiler_pb2.ListProfilesRequest(), timeout=5)
            listed = await executor.ListModels(executor_pb2.ListModelsRequest(), timeout=5)
            loaded = {(m.model.name, m.model.version) for m in listed.models
                      if m.state == common_pb2.MODEL_STATE_ELIGIBLE}
            eligible = [p for p in reply.profiles if p.state == common_pb2.MODEL_STATE_ELIGIBLE
                        and (p.model.name, p.model.version) in loaded]
            if len(eligible) != shown:
                shown = len(eligible)
                print(f"warming up models: {shown}/{expected} eligible", file=sys.stderr, flush=True)
            if len(eligible) >= expected:
                return [_Profile(p.model.name, p.mean_ms, p.std_ms, p.declared_accuracy) for p in eligible]
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(eligible)} of {expected} models became eligible in {timeout_s:g} s")
            await asyncio.sleep(0.5)


@dataclass(frozen=True)
class _Profile:
    name: str
    mean_ms: float
    std_ms: float
    declared_accuracy: float


async def send_burst(target: str, sla_ms: float, images, labels, network: tuple[float, float], *,
                     concurrency: int, rng: random.Random, policy: str = "") -> SlaReport:
    from modipick.client import AsyncModiPickClient, ModiPickError

    report = SlaReport(sla_ms)
    mean, std = network
    legs = [(max(0.0, rng.gauss(mean, std)), max(0.0, rng.gauss(mean, std))) for _ in range(len(images))]
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(len(images)):
        queue.put_nowait(i)
    async with AsyncModiPickClient(target) as client:
        async def worker() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                report.sent += 1
                up, back = legs[i]
                try:
                    r = await client.infer(images[i], sla_ms, label=int(labels[i]), upload_delay_ms=up,
                                           return_delay_ms=back, policy=policy)
                except ModiPickError as exc:
                    report.errors[exc.code.name] += 1
                    continue
                report.budgets.append(r.timings.budget_ms)
                if r.run_on_device:
                    report.on_device += 1
                    report.mix["on device"] += 1
                    continue
                report.served += 1
                report.mix[r.model] += 1
                report.e2e.append(r.e2e_ms)
                report.met += r.met_sla
                report.correct += r.label == int(labels[i])

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return report


async def calibrate(target: str, images, network: tuple[float, float], rng: random.Random,
                    concurrency: int) -> tuple[float, float]:
    """Median upload the Selector measures on this emulated link (the sleep plus real overheads),
    and median serving overhead (server time beyond the model's run), under the burst's concurrency."""
    from modipick.client import AsyncModiPickClient

    uploads, overheads = [], []
    async with AsyncModiPickClient(target) as client:
        await client.wait_ready()

        async def one(image) -> None:
            # < 1 s: gRPC sends shorter timeouts exactly (longer ones rounded up to 10 ms), and the
            # Selector measures the upload from the deadline
            r = await client.infer(image, 999, upload_delay_ms=max(0.0, rng.gauss(*network)))
            uploads.append(r.timings.upload_ms)
            overheads.append(r.timings.server_ms - r.timings.execution_ms)

        for start in range(0, len(images), concurrency):
            await asyncio.gather(*(one(image) for image in images[start:start + concurrency]))
    return sorted(uploads)[len(uploads) // 2], sorted(overheads)[len(overheads) // 2]


def parse(argv: list[str]):
    import argparse

    from modipick.cli.suite import DEFAULT_REDIS_URL

    p = argparse.ArgumentParser(prog="modipick demo", description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=80, help="requests per SLA and policy")
    p.add_argument("--slas", default="", help="comma-separated SLAs in ms (default: placed from the profiles)")
    p.add_argument("--network", default="perfect", choices=sorted(NETWORKS), help="emulated one-way leg profile")
    p.add_argument("--concurrency", type=int, default=2, help="requests in flight")
    p.add_argument("--policies", default="risk_aware,modipick,dynamic_greedy",
                   help="comma-separated policies to compare (per-request override)")
    p.add_argument("--threshold-ms", type=float, default=1.0, help="ModiPick T_threshold")
    p.add_argument("--redis-url", default=DEFAULT_REDIS_URL, help="Redis to use if reachable ('memory' to skip)")
    p.add_argument("--model-base", default="", help="digits pool base path (default: the zoo cache; built if missing)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep-logs", action="store_true", help="keep the services' log file")
    args = p.parse_args(argv)
    if args.requests <= 0 or args.concurrency <= 0:
        p.error("--requests and --concurrency must be positive")
    from modipick.core.policies import LIVE_POLICIES

    args.policy_list = [x.strip() for x in args.policies.split(",") if x.strip()]
    unknown = [x for x in args.policy_list if x not in LIVE_POLICIES]
    if unknown or not args.policy_list:
        p.error(f"--policies: unknown {unknown or args.policies!r}; live policies: {', '.join(LIVE_POLICIES)}")
    try:
        args.sla_list = [float(s) for s in args.slas.split(",") if s.strip()]
    except ValueError:
        p.error(f"--slas: not a list of numbers: {args.slas!r}")
    if any(not (0 < s < 3_600_000) for s in args.sla_list):
        p.error(f"--slas: every SLA must be in (0, 3600000) ms: {args.slas!r}")
    return args


async def run(args, log_file) -> int:
    from modipick.cli.suite import Suite, SuiteSettings
    from modipick.zoo.digits import held_out_digits
    from modipick.zoo.manifest import read_manifest

    from pathlib import Path

    settings = SuiteSettings(selector_port=0, executor_port=0, profiler_port=0, redis_url=args.redis_url,
                             model_base=Path(args.model_base).expanduser() if args.model_base else None,
                             threshold_ms=args.threshold_ms, seed=args.seed, log_level="warning",
                             child_output=log_file)
    print("bringing the suite up (first run builds the digits pool) ...", file=sys.stderr, flush=True)
    async with Suite(settings) as suite:
        print("suite up:", *suite.describe(), sep="\n  ")
        manifest = read_manifest(suite.model_base)
        profiles = await wait_eligible(suite.profiler_target, suite.executor_target, len(manifest.models), 300)
        accuracy = {p.name: p.declared_accuracy for p in profiles}
        print("models (learned during warm-up):")
        for p in sorted(profiles, key=lambda p: p.mean_ms):
            print(f"  {p.name:<12} mean {p.mean_ms:6.2f} ms  std {p.std_ms:5.2f} ms  "
                  f"declared accuracy {p.declared_accuracy:5.1f}%")
        network = NETWORKS[args.network]
        images, labels = held_out_digits()
        rng = random.Random(args.seed)
        upload, overhead = await calibrate(suite.selector_target, images[:32], network, rng, args.concurrency)
        slas = args.sla_list or place_slas(profiles, upload, overhead, args.threshold_ms)
        order = rng.sample(range(len(images)), k=min(args.requests, len(images)))
        print(f"network '{args.network}': one-way {network[0]:g} +- {network[1]:g} ms slept by the client; the "
              f"Selector measures {upload:.1f} ms upload and {overhead:.1f} ms serving overhead (medians)\n"
              f"{len(order)} held-out digits per SLA and policy, {args.concurrency} in flight, "
              f"T_threshold {args.threshold_ms:g} ms; attainment = answered by the server within the SLA; "
              f"'on device' = the Selector declined at once (nothing fits)")
        width = max(len(x) for x in args.policy_list)
        for sla in slas:
            for index, policy in enumerate(args.policy_list):
                report = await send_burst(suite.selector_target, sla, images[order], labels[order], network,
                                          concurrency=args.concurrency, rng=rng, policy=policy)
                head = f"SLA {sla:7.1f} ms" if index == 0 else " " * 14
                print(f"{head} | {policy:<{width}} | {report.line(accuracy)}", flush=True)
    print("suite stopped.")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse(list(sys.argv[1:] if argv is None else argv))
    from modipick.cli.suite import SuiteError
    from modipick.runtime.logging import configure_logging

    configure_logging(level="warning")
    log = tempfile.NamedTemporaryFile("w+", prefix="modipick-demo-", suffix=".log", delete=not args.keep_logs)
    try:
        return asyncio.run(run(args, log))
    except (SuiteError, TimeoutError) as exc:
        log.flush()
        log.seek(0)
        tail = log.read().splitlines()[-15:]
        print(f"modipick demo: {exc}", *(f"  | {line}" for line in tail), sep="\n", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        if args.keep_logs:
            print(f"services' log: {log.name}", file=sys.stderr)
        log.close()


if __name__ == "__main__":
    sys.exit(main())
