"""`modipick demo`: what modipick is for, on this machine, in about two minutes.

A phone sends a photo with an SLA ("answer within 150 ms"). Part of that time is spent on the
mobile network before the request arrives, and the answer has to travel back. modipick keeps a pool
of models, fast and rough to slow and accurate, and picks for each request the most accurate one
that still fits what is left; when none fits, it tells the phone at once to answer with its own
small on-device model.

The demo brings the suite up on the embedded default (Executor with embedded TensorFlow, Profiler,
Selector, Redis when there is one), replays a real LTE uplink trace that ships with modipick, and
sends the same arrivals, photos and network legs through three policies: static greedy (the most
accurate model that fits the SLA, blind to the network), ModiPick (the paper's policy) and
risk_aware (modipick's default). It prints one table and writes out/demo/report.md with its plots.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Mapping

from modipick.cli.story import LEGEND, place_slas, story_markdown, story_rows, story_table
from modipick.runtime.config import EnvArgumentParser, non_negative_float, positive_float, positive_int

DEMO_POOL = "imagenet-arch"
DEMO_MODELS = ("mobilenet-025", "mobilenet-050", "mobilenet-100", "inception-v3")
DEMO_INPUT_PX = 128
DEMO_NETWORK = "lte_mahimahi_short/TMobile-LTE-short"
DEMO_POLICIES = "static_greedy,modipick,risk_aware"


def demo_pool_dir(environ: Mapping[str, str] | None = None) -> Path:
    from modipick.cli.suite import default_model_base

    return default_model_base(f"{DEMO_POOL}-{DEMO_INPUT_PX}", dict(environ) if environ is not None else None)


def build_args() -> tuple[str, ...]:
    return ("--models", ",".join(DEMO_MODELS), "--input-size", str(DEMO_INPUT_PX))


def _sla_list(text: str) -> list[float]:
    values = [float(s) for s in text.split(",") if s.strip()]
    if any(not (0 < v < 3_600_000) for v in values):
        raise ValueError(f"every SLA must be in (0, 3600000) ms, got {text!r}")
    return values


def parse(argv: list[str], environ: Mapping[str, str] | None = None):
    from modipick.cli.suite import DEFAULT_REDIS_URL
    from modipick.core.policies import LIVE_POLICIES

    p = EnvArgumentParser(prog="modipick demo", description=__doc__.split("\n\n")[0], environ=environ)
    p.add_option("--slas", default="", type=str, help="comma-separated SLAs in ms ('': placed from the "
                 "models' learned latencies and the trace's legs)")
    p.add_option("--requests", default=48, type=positive_int, help="requests per SLA and policy")
    p.add_option("--rate", default=8.0, type=positive_float, help="Poisson arrivals per second")
    p.add_option("--policies", default=DEMO_POLICIES, help="comma-separated live policies, compared on the "
                 f"same arrivals ({', '.join(LIVE_POLICIES)})")
    p.add_option("--network", default=DEMO_NETWORK, help="trace (see `modipick traces list`) or named network")
    p.add_argument("--traces-dir", action="append", default=[], metavar="DIR",
                   help="also look traces up here (repeatable) [env MODIPICK_TRACES_DIR]")
    p.add_option("--request-bytes", default=30_000, type=positive_int, help="the photo's size on the uplink")
    p.add_option("--response-bytes", default=1_000, type=positive_int, help="the answer's size on the downlink")
    p.add_option("--base-rtt-ms", default=20.0, type=non_negative_float, help="propagation RTT, half per leg")
    p.add_option("--threshold-ms", default=5.0, type=non_negative_float, help="ModiPick T_threshold")
    p.add_option("--redis-url", default=DEFAULT_REDIS_URL, help="Redis to use if reachable ('memory' to skip)",
                 secret=True)
    p.add_option("--model-base", default="", help="pool base path (default: the demo pool in the zoo cache; "
                 "built there if missing)")
    p.add_option("--out", default="out/demo", help="report folder")
    p.add_option("--seed", default=1, type=int, help="arrivals, photos and the Selector's RNG")
    p.add_option("--keep-logs", action="store_true", help="keep the services' log file")
    args = p.parse_args(argv)
    args.policy_list = [x.strip() for x in args.policies.split(",") if x.strip()]
    unknown = [x for x in args.policy_list if x not in LIVE_POLICIES]
    if unknown or not args.policy_list:
        p.error(f"--policies: unknown {unknown or args.policies!r}; live policies: {', '.join(LIVE_POLICIES)}")
    try:
        args.sla_list = _sla_list(args.slas)
    except ValueError as exc:
        p.error(f"--slas: {exc}".replace("could not convert string to float: ", "not a number: "))
    return args


def open_demo_network(args):
    """The network legs; LoadgenInputError names a missing trace before anything starts."""
    from modipick.loadgen.traces import NetworkOptions, Sizes, open_network
    from modipick.loadgen.traces.catalog import search_path

    sizes = Sizes(args.request_bytes, args.response_bytes, args.base_rtt_ms)
    return open_network(args.network, NetworkOptions(sizes=sizes, seed=args.seed,
                                                     traces_dirs=search_path(args.traces_dir)))


def ensure_pool(base: Path) -> None:
    """Set-up, once: build the demo pool into the zoo cache (its progress shown)."""
    import subprocess

    from modipick.cli.suite import SuiteError, modipick_command
    from modipick.zoo.builder import BuildRequest, is_current
    from modipick.zoo.manifest import try_read_manifest

    if is_current(BuildRequest(pool=DEMO_POOL, out=base, models=DEMO_MODELS, input_size=DEMO_INPUT_PX)):
        return
    print(f"set-up (once, cached): building the demo pool ({', '.join(DEMO_MODELS)} at {DEMO_INPUT_PX} px) "
          f"into {base} ...", file=sys.stderr, flush=True)
    cmd = modipick_command("zoo", "build", "--pool", DEMO_POOL, "--out", str(base), *build_args())
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if done.returncode != 0 or try_read_manifest(base) is None:
        raise SuiteError(f"building the demo pool into {base} failed (exit {done.returncode})")


async def wait_eligible(profiler_target: str, executor_target: str, expected: int, timeout_s: float) -> list:
    """The profiles once every model is eligible and the Executor has it loaded (profiles kept in
    Redis from an earlier run read eligible before this Executor has loaded the model)."""
    import grpc

    from modipick.cli.story import Profile
    from modipick.v1 import common_pb2, executor_pb2, executor_pb2_grpc, profiler_pb2, profiler_pb2_grpc

    deadline = time.monotonic() + timeout_s
    shown = -1
    async with grpc.aio.insecure_channel(profiler_target) as channel, \
            grpc.aio.insecure_channel(executor_target) as executor_channel:
        stub = profiler_pb2_grpc.ProfilerServiceStub(channel)
        executor = executor_pb2_grpc.ExecutorServiceStub(executor_channel)
        while True:
            try:
                reply = await stub.ListProfiles(profiler_pb2.ListProfilesRequest(), timeout=10)
                listed = await executor.ListModels(executor_pb2.ListModelsRequest(), timeout=10)
            except grpc.aio.AioRpcError as exc:  # a service busy loading TensorFlow: ask again
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the suite did not answer in {timeout_s:g} s: {exc.code().name}") from None
                await asyncio.sleep(0.5)
                continue
            loaded = {(m.model.name, m.model.version) for m in listed.models
                      if m.state == common_pb2.MODEL_STATE_ELIGIBLE}
            eligible = [p for p in reply.profiles if p.state == common_pb2.MODEL_STATE_ELIGIBLE
                        and (p.model.name, p.model.version) in loaded]
            if len(eligible) != shown:
                shown = len(eligible)
                print(f"loading and timing the models: {shown}/{expected} ready", file=sys.stderr, flush=True)
            if len(eligible) >= expected:
                return [Profile(p.model.name, p.mean_ms, p.std_ms, p.declared_accuracy) for p in eligible]
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(eligible)} of {expected} models became ready in {timeout_s:g} s")
            await asyncio.sleep(0.5)


async def replay(address: str, network, slas: list[float], policies: list[str], load, dataset) -> list:
    """Per SLA, every policy in turn on the same arrivals, photos and legs (one after the other: side
    by side, the accurate models one policy sends would queue in front of another's)."""
    from modipick.loadgen.experiment import fresh_client_id
    from modipick.loadgen.grpc_target import GrpcSelectorTarget
    from modipick.loadgen.runner import RunSpec, run_open_loop
    from modipick.loadgen.traces import upload_stats

    target = GrpcSelectorTarget(address)
    await target.wait_ready()
    cv = upload_stats(network).cv
    # one phone per policy for the whole demo, as an app keeps its id: what risk_aware learns about
    # its answers' way back at the first SLA it keeps for the next (a fresh id per demo: nothing
    # learned in an earlier demo, kept in Redis, carries over)
    phones = {policy: fresh_client_id() for policy in policies}
    records: list = []
    try:
        for sla in slas:
            offsets = load.offsets(network)
            print(f"SLA {sla:g} ms: {len(offsets)} photos through each policy ...", file=sys.stderr, flush=True)
            specs = [RunSpec(label=f"{policy} sla={sla:g} net={network.name}", policy=policy, sla_ms=sla,
                             offsets_s=offsets, network=network, mode="realtime", report_outcomes=True,
                             drain_s=10.0, network_cv=cv, client_id=phones[policy]) for policy in policies]
            for spec in specs:
                records += await run_open_loop(target, spec, dataset)
    finally:
        await target.close()
    return records


async def run(args, log_file) -> int:
    import numpy as np

    from modipick.cli.suite import Suite, SuiteSettings
    from modipick.loadgen.datasets import make_dataset
    from modipick.loadgen.experiment import Load
    from modipick.loadgen.report import write_report
    from modipick.loadgen.traces import upload_stats
    from modipick.zoo.manifest import read_manifest

    network = open_demo_network(args)
    base = Path(args.model_base).expanduser() if args.model_base else demo_pool_dir()
    await asyncio.to_thread(ensure_pool, base)
    manifest = read_manifest(base)
    started = time.monotonic()
    settings = SuiteSettings(selector_port=0, executor_port=0, profiler_port=0, redis_url=args.redis_url,
                             model_base=base, build=False, threshold_ms=args.threshold_ms, seed=args.seed,
                             log_level="warning", child_output=log_file)
    print("bringing the suite up ...", file=sys.stderr, flush=True)
    async with Suite(settings) as suite:
        print(f"suite up in {time.monotonic() - started:.0f} s:", *suite.describe(), sep="\n  ", flush=True)
        profiles = await wait_eligible(suite.profiler_target, suite.executor_target, len(manifest.models), 240)
        print(f"models ready after {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
        declared = {p.name: p.declared_accuracy for p in profiles}
        print("\nthe model pool (latency as the Profiler measured it here; accuracy as declared, ImageNet top-1):")
        for p in sorted(profiles, key=lambda p: p.mean_ms):
            print(f"  {p.name:<14} {p.mean_ms:6.1f} ms (+- {p.std_ms:4.1f})   accuracy {p.declared_accuracy:4.1f} %")
        stats = upload_stats(network)
        back = float(np.median([network.return_ms(i, 0.1 * i) for i in range(1000)]))
        slas = args.sla_list or place_slas(profiles, stats.p50_ms + back)
        print(f"\nnetwork: {network.name} (a real LTE trace): the {args.request_bytes // 1000} KB photo takes "
              f"{stats.p50_ms:.0f} ms to upload at the median, {stats.p95_ms:.0f} ms at p95; the answer "
              f"{back:.0f} ms back\n{args.requests} photos per SLA and policy, Poisson at {args.rate:g}/s, the "
              f"same arrivals and legs for every policy; SLAs {', '.join(f'{s:g}' for s in slas)} ms\n",
              flush=True)
        image_px = manifest.models[0].input_shape[1] if manifest.pool != "digits" else 0
        dataset = make_dataset("digits" if manifest.pool == "digits" else "image", seed=args.seed,
                               image_size=image_px or 224)
        records = await replay(suite.selector_target, network, slas, args.policy_list,
                               Load("poisson", args.rate, args.requests, None, args.seed), dataset)
    rows = story_rows(records, declared)
    print(story_table(rows), LEGEND, sep="\n\n")
    report = write_report(args.out, records, declared=declared, network_stats=[stats], settings={
        "pool": f"{manifest.pool}: {', '.join(sorted(declared, key=declared.get))}",
        "network": f"{network.name}, request {args.request_bytes} B, answer {args.response_bytes} B, "
                   f"base RTT {args.base_rtt_ms:g} ms",
        "load": f"Poisson {args.rate:g}/s, {args.requests} per SLA and policy, seed {args.seed}"})
    text = report.read_text(encoding="utf-8")
    report.write_text(story_markdown(rows) + "\n" + text.replace("# modipick loadgen report", "## Details", 1),
                      encoding="utf-8")
    print(f"\nreport: {report}\nsuite stopped; the story took {time.monotonic() - started:.0f} s after set-up.")
    return 0


def main(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    args = parse(list(sys.argv[1:] if argv is None else argv), environ)
    from modipick.cli.suite import SuiteError
    from modipick.loadgen.errors import LoadgenInputError
    from modipick.runtime.logging import configure_logging

    configure_logging(level="warning")
    try:
        open_demo_network(args)
    except LoadgenInputError as exc:
        print(f"modipick demo: --network: {exc}", file=sys.stderr)
        return 2
    log = tempfile.NamedTemporaryFile("w+", prefix="modipick-demo-", suffix=".log", delete=not args.keep_logs)
    try:
        return asyncio.run(run(args, log))
    except (SuiteError, TimeoutError, ConnectionError) as exc:
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
