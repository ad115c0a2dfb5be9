"""The `modipick loadgen` subcommands (argument parsing lives in modipick.loadgen.cli)."""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path
from typing import Sequence

from modipick.loadgen.clock import run as run_async
from modipick.loadgen.errors import LoadgenInputError
from modipick.loadgen.traces import (NetworkOptions, Sizes, TraceLegs, cv_sweep, open_network, profile_legs,
                                     upload_stats)
from modipick.loadgen.traces.legs import LegModel


def _network_options(args: argparse.Namespace) -> NetworkOptions:
    try:
        sizes = Sizes(args.request_bytes, args.response_bytes, args.base_rtt_ms)
    except ValueError as exc:
        raise LoadgenInputError("--request-bytes/--response-bytes", str(exc)) from None
    return NetworkOptions(sizes=sizes, seed=getattr(args, "seed", 0), trace_format=args.trace_format,
                          rate_unit=args.rate_unit, anchor=args.anchor, offset_s=args.trace_offset_s,
                          rescale_median_ms=args.rescale_median_ms, traces_dirs=_traces_dirs(args))


def _traces_dirs(args: argparse.Namespace) -> tuple[Path, ...]:
    from modipick.loadgen.traces.catalog import search_path

    return search_path(args.traces_dir or ())


def _networks(args: argparse.Namespace, specs: Sequence[str]) -> list[LegModel]:
    options = _network_options(args)
    models = [open_network(spec, options) for spec in specs]
    if args.cv_sweep:
        if any(cv < 0 for cv in args.cv_sweep):
            raise LoadgenInputError("--cv-sweep", "CVs must be >= 0")
        models += [profile_legs(p, options) for p in cv_sweep(args.cv_mean_ms, args.cv_sweep, args.cv_dist)]
    return models


def _declared(args: argparse.Namespace) -> dict[str, float]:
    from modipick.loadgen.experiment import fetch_declared, read_manifest

    declared: dict[str, float] = {}
    if args.manifest:
        declared.update(read_manifest(args.manifest))
    if args.profiler:
        declared.update(run_async(fetch_declared(args.profiler)))
    return declared


def stats(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from modipick.loadgen.summary import format_table

    rows = []
    for model in _networks(args, args.networks):
        s = upload_stats(model)
        extra = ""
        if isinstance(model, TraceLegs):
            up, down = model.link()
            extra = f"up {up.mean_rate_bps / 1e6:.2f} / down {down.mean_rate_bps / 1e6:.2f} Mbps"
        rows.append([s.name, f"{s.mean_ms:.1f}", f"{s.std_ms:.1f}", f"{100 * s.cv:.0f}%", f"{s.p50_ms:.1f}",
                     f"{s.p95_ms:.1f}", f"{s.p99_ms:.1f}", extra])
    print(f"upload leg for {args.request_bytes} B (+ half of a {args.base_rtt_ms:g} ms base RTT)")
    print(format_table(["network", "mean ms", "std ms", "CV", "p50", "p95", "p99", "rate"], rows))
    return 0


def run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from modipick.loadgen.datasets import make_dataset
    from modipick.loadgen.experiment import Experiment, Load, run_experiment
    from modipick.loadgen.progress import make_progress
    from modipick.loadgen.records import write_records
    from modipick.loadgen.summary import client_table, comparison_tables, summarize, summary_table

    if args.count is None and args.duration is None:
        args.count = 500
    networks: list[LegModel | None] = list(_networks(args, args.network))
    if args.mode != "direct" and not networks:
        raise LoadgenInputError("--network", f"mode {args.mode} needs a network (or use --mode direct)")
    if args.mode == "direct":
        if networks:
            raise LoadgenInputError("--network", "mode direct emulates no network; use --mode realtime or link")
        networks = [None]
    if args.clients and args.client_id:
        raise LoadgenInputError("--client-id", "a population (--clients) names its own clients")
    if args.mode == "link" and "," in args.target:
        raise LoadgenInputError("--target", "link mode shapes the link to one Selector; give one HOST:PORT")
    policies = [p.strip() for p in args.compare.split(",") if p.strip()] or [""]
    _check_policies(policies)
    declared = _declared(args)
    try:
        dataset = make_dataset(args.dataset, seed=args.seed, payload_bytes=args.request_bytes,
                               image_size=args.image_size)
    except ValueError as exc:
        raise LoadgenInputError("--dataset", str(exc)) from None
    uploads, upload_plan = _uploads(args)
    experiment = Experiment(
        address=args.target, networks=networks, slas_ms=args.sla, policies=policies,
        load=Load(args.arrivals, args.rate, args.count, args.duration, args.seed), dataset=dataset,
        mode=args.mode, concurrency=args.concurrency, deadline=not args.no_deadline,
        report_outcomes=args.report_outcomes, drain_s=args.drain_s, client_id=args.client_id,
        clients=args.clients or 0, zipf_s=args.zipf_s, population_tag=args.population_tag,
        uploads=uploads, upload_plan=upload_plan)
    records = run_async(run_experiment(experiment, make_progress(args.progress)))
    for label, plan in experiment.upload_plans.items():
        chosen = getattr(plan.chooser, "chosen", None)
        if chosen:
            print(f"{label}: sizes sent {dict(sorted(chosen.items()))}")
    summaries = summarize(records, declared, args.client_min_requests)
    if args.records:
        write_records(args.records, records)
    path = None
    if args.report:
        from modipick.loadgen.report import write_report

        stats_ = [upload_stats(n) for n in networks if n is not None]
        path = write_report(args.report, records, declared=declared, argv=argv, network_stats=stats_,
                            min_client_requests=args.client_min_requests, settings={
            "target": args.target, "mode": args.mode,
            "load": f"{args.arrivals} at {args.rate:g} req/s, count {args.count}, duration {args.duration}, "
                    f"seed {args.seed}, concurrency {args.concurrency}",
            "sizes": f"request {args.request_bytes} B, response {args.response_bytes} B, "
                     f"base RTT {args.base_rtt_ms:g} ms",
            "dataset": args.dataset + (f" ({args.image_size} px PNG)" if args.dataset == "image" else ""),
            "outcome reports": "on" if args.report_outcomes else "off",
            "client id": (f"{args.clients} clients, Zipf s={args.zipf_s:g}" if args.clients
                          else args.client_id or "a fresh one per run")})
    print(summary_table(summaries))
    clients = client_table(summaries)
    if clients:
        print()
        print(clients)
    if len(policies) > 1:
        print()
        print(comparison_tables(summaries))
    if path is not None:
        print(f"\nreport: {path}")
    return _check(args, summaries, records)


def _uploads(args: argparse.Namespace):
    """The --uploads runs and the coroutine that builds each one's plan (menu from live profiles)."""
    if not args.uploads:
        return [], None
    from modipick.loadgen.experiment import fetch_profiles
    from modipick.loadgen.uploads import (SizedImages, UploadPlan, build_menu, make_chooser, parse_uploads,
                                          read_input_sizes)

    sizes = sorted({int(s) for s in args.upload_sizes})
    if any(s < 8 for s in sizes) or any(s != int(s) for s in args.upload_sizes):
        raise LoadgenInputError("--upload-sizes", "expected whole numbers of px >= 8")
    specs = parse_uploads(args.uploads, sizes)
    if args.mode != "realtime":
        raise LoadgenInputError("--uploads", "upload sizes need --mode realtime")
    if not (args.profiler and args.manifest):
        raise LoadgenInputError("--uploads", "needs --profiler (the models' latencies) and --manifest (their sizes)")
    input_sizes = read_input_sizes(args.manifest)
    images = SizedImages(sizes, seed=args.seed)

    async def plan(spec: str) -> UploadPlan:
        menu = build_menu(await fetch_profiles(args.profiler), input_sizes, images, args.upload_default)
        return UploadPlan(make_chooser(spec, menu, args.upload_reply_ms, ""), images, name=spec)

    return specs, plan


def _check(args: argparse.Namespace, summaries, records) -> int:
    """Failures by reason, the thresholds' verdicts and the JSON summary; EXIT_THRESHOLDS_FAILED
    when a bar is not met."""
    from modipick.loadgen import thresholds as bars

    wanted = list(args.threshold)
    if args.max_error_rate is not None:
        wanted.append(bars.Threshold("error_rate", "<=", args.max_error_rate))
    failures = bars.failures_by_reason(records)
    verdicts = bars.evaluate(summaries, wanted)
    print()
    print(bars.format_failures(failures))
    if verdicts:
        print(bars.format_verdicts(verdicts))
    if args.summary_json:
        bars.write_summary_json(args.summary_json, summaries, failures, verdicts)
        print(f"summary: {args.summary_json}")
    return 0 if all(v.passed for v in verdicts) else bars.EXIT_THRESHOLDS_FAILED


def _check_policies(policies: list[str]) -> None:
    from modipick.core.policies import LIVE_POLICIES

    unknown = [p for p in policies if p and p not in LIVE_POLICIES]
    if unknown:
        raise LoadgenInputError("--compare", f"unknown policy {unknown[0]!r}; known: {', '.join(LIVE_POLICIES)}")


def report(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from modipick.loadgen.records import read_records
    from modipick.loadgen.report import write_report

    records = read_records(args.records)
    if not records:
        raise LoadgenInputError(args.records, "no records")
    print(write_report(args.out, records, declared=_declared(args), argv=argv))
    return 0


async def _serve_until_signal(start, describe: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    closer = await start()
    print(describe.format(port=closer[1]), flush=True)
    await stop.wait()
    await closer[0]()


def trivial_server(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from modipick.loadgen.trivial import start_trivial_server

    async def start():
        server, port, _ = await start_trivial_server(f"{args.host}:{args.port}", default_policy=args.policy,
                                                     execute=args.execute, seed=args.seed)
        return (lambda: server.stop(1.0)), port

    try:
        asyncio.run(_serve_until_signal(start, f"trivial selector listening on {args.host}:{{port}}"))
    except OSError as exc:
        raise LoadgenInputError(f"{args.host}:{args.port}", str(exc)) from None
    return 0


def link(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from modipick.loadgen.link import LinkEmulator

    model = open_network(args.network, _network_options(args))
    schedules = model.link()
    if schedules is None:
        raise LoadgenInputError(args.network, "not a link trace (Mahimahi .up/.down or a throughput series)")
    host, _, port = args.upstream.rpartition(":")
    if not port.isdigit():
        raise LoadgenInputError("--upstream", f"expected HOST:PORT, got {args.upstream!r}")

    async def start():
        emulator = LinkEmulator(*schedules, (host or "127.0.0.1", int(port)),
                                one_way_delay_ms=args.base_rtt_ms / 2, offset_ms=args.trace_offset_s * 1000)
        bound = await emulator.start(args.host, args.port)
        return emulator.close, bound

    up, down = schedules
    run_async(_serve_until_signal(start, f"link {model.name} (up {up.mean_rate_bps / 1e6:.2f} Mbps, down "
                                           f"{down.mean_rate_bps / 1e6:.2f} Mbps) on {args.host}:{{port}} -> "
                                           f"{args.upstream}"))
    return 0

