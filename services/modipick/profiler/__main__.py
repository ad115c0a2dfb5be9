"""`modipick profiler`: the one writer of model profiles (observations, outcomes, registry, probes)."""

from __future__ import annotations

import argparse
import sys
from typing import Mapping

from modipick.runtime.config import EnvArgumentParser, non_negative_float, positive_float, positive_int
from modipick.runtime.entrypoint import add_server_options, run_service, serve_app, server_settings
from modipick.runtime.security_options import add_service_identity_options, label_clients, service_credentials
from modipick.profiler.metrics import ProfilerMetrics


def _alpha(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a number in (0, 1], got {text!r}")
    return value


def parse_settings(argv: list[str], environ: Mapping[str, str] | None = None):
    from modipick.profiler.accuracy import AccuracyBounds
    from modipick.profiler.app import ProfilerSettings
    from modipick.profiler.drift import ChangeSettings
    from modipick.profiler.lifecycle import LifecycleSettings
    from modipick.profiler.return_legs import DEFAULT_KEEP

    p = EnvArgumentParser(prog="modipick profiler", description=__doc__, environ=environ)
    p.add_option("--listen", default="0.0.0.0:50053", help="address to serve on")
    p.add_option("--redis-url", default="redis://127.0.0.1:6379/0",
                 help="profile store: a redis://, rediss://, redis+sentinel://host:port[,host:port]/service/db "
                      "or redis+cluster://host:port[,...] URL, or 'memory'",
                 secret=True)
    p.add_option("--executor-target", default="127.0.0.1:50052", help="Executor to discover and probe models on")
    p.add_option("--alpha", default=0.1, type=_alpha, help="EWMA weight of a new observation")
    p.add_option("--change-run", default=3, type=int,
                 help="re-seed a profile after this many consecutive outlying observations (0: off)")
    p.add_option("--change-sigmas", default=4.0, type=positive_float,
                 help="an outlier is beyond this many standard deviations ...")
    p.add_option("--change-rel", default=0.25, type=non_negative_float, help="... and this share of the mean")
    p.add_option("--warmup-runs", default=5, type=int, help="discarded runs before a new model is profiled")
    p.add_option("--probe-runs", default=10, type=positive_int, help="recorded runs before a model is eligible")
    p.add_option("--reprobe-after-s", default=60.0, type=positive_float,
                 help="probe an eligible model not observed for this long")
    p.add_option("--reprobe-runs", default=3, type=positive_int, help="runs per re-probe")
    p.add_option("--discovery-interval-s", default=5.0, type=positive_float, help="poll the Executor's models")
    p.add_option("--no-discovery", action="store_true", help="only register models through RegisterModel")
    p.add_option("--probe-timeout-s", default=30.0, type=positive_float, help="deadline of one probe run")
    p.add_option("--buffer-capacity", default=100_000, type=positive_int,
                 help="observations held while the store is unavailable (oldest dropped beyond)")
    p.add_option("--seed", default=0, type=int, help="seed of the discovery jitter")
    p.add_option("--return-leg-keep", default=DEFAULT_KEEP, type=positive_int,
                 help="entries the shared return-leg stream keeps (approximate): a new Selector replica replays them")
    add_server_options(p, downstream="the Executor", redis=True, admin=True)
    add_service_identity_options(p)
    args = p.parse_args(argv)
    if args.warmup_runs < 0:
        p.error(f"--warmup-runs: must be >= 0, got {args.warmup_runs}")
    if args.change_run < 0:
        p.error(f"--change-run: must be >= 0, got {args.change_run}")
    fields = server_settings(p, args)
    fields["service_credentials"] = service_credentials(p, args, fields.get("admin_token"))
    fields["accuracy"] = AccuracyBounds(max_shift_pct=args.accuracy_max_shift_pct, trusted=label_clients(p, args))
    settings = ProfilerSettings(
        address=args.listen, store_url=args.redis_url, executor_target=args.executor_target, alpha=args.alpha,
        changes=ChangeSettings(run=args.change_run, k=args.change_sigmas, rel=args.change_rel),
        lifecycle=LifecycleSettings(warmup_runs=args.warmup_runs, probe_runs=args.probe_runs,
                                    reprobe_after_s=args.reprobe_after_s, reprobe_runs=args.reprobe_runs,
                                    discovery_interval_s=args.discovery_interval_s),
        discover=not args.no_discovery, probe_timeout_s=args.probe_timeout_s,
        buffer_capacity=args.buffer_capacity, seed=args.seed, return_leg_keep=args.return_leg_keep,
        **fields)
    return settings, args


async def serve(settings, metrics_port: int = 0) -> None:
    from modipick.profiler.app import start_profiler

    await serve_app(start_profiler, settings, ProfilerMetrics(), metrics_port)


def main(argv: list[str] | None = None) -> int:
    settings, args = parse_settings(list(sys.argv[1:] if argv is None else argv))
    from modipick.stores import StoreConfigError

    return run_service("profiler", args, lambda: serve(settings, args.metrics_port),
                       bad_config=(StoreConfigError,), bad_config_flag="--redis-url")


if __name__ == "__main__":
    sys.exit(main())
