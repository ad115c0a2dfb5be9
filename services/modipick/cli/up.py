"""`modipick up`: Profiler, Executor (embedded) and Selector on this machine, until Ctrl-C/SIGTERM.

Builds the digits pool if it is missing, uses Redis at --redis-url when reachable, else starts a
local redis-server if one is installed, else falls back to the in-memory store (one replica).
"""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Mapping

from modipick.runtime.config import EnvArgumentParser, non_negative_float, positive_float


LOG_LEVELS = ("debug", "info", "warning", "error")


def parse(argv: list[str], environ: Mapping[str, str] | None = None):
    from modipick.cli.suite import DEFAULT_REDIS_URL
    from modipick.core.policies import LIVE_POLICIES
    from modipick.zoo.builder import POOLS

    p = EnvArgumentParser(prog="modipick up", description=__doc__, environ=environ)
    p.add_option("--host", default="127.0.0.1", help="interface every service listens on")
    p.add_option("--selector-port", default=50051, type=int, help="0: any free port")
    p.add_option("--executor-port", default=50052, type=int, help="0: any free port")
    p.add_option("--profiler-port", default=50053, type=int, help="0: any free port")
    p.add_option("--redis-url", default=DEFAULT_REDIS_URL, help="Redis to use if reachable ('memory' to skip)",
                 secret=True)
    p.add_option("--model-base", default="", help="TF Serving base path (default: the zoo cache of --pool)")
    p.add_option("--pool", default="digits", choices=POOLS, help="pool to build when the base path holds none")
    p.add_option("--policy", default="risk_aware", choices=LIVE_POLICIES, help="the Selector's default policy")
    p.add_option("--threshold-ms", default=1.0, type=non_negative_float,
                 help="ModiPick T_threshold (the digits models run in a few ms)")
    p.add_option("--seed", default=0, type=int, help="the Selector's RNG seed")
    p.add_option("--profile-refresh-ms", default=200.0, type=positive_float, help="Selector profile staleness")
    p.add_option("--serving-overhead-ms", default="auto",
                 help="the Selector's own time taken off each budget: 'auto' (learned) or ms")
    p.add_option("--log-level", default="info", choices=LOG_LEVELS, help="services' log level")
    p.add_option("--no-execute-socket", action="store_true",
                 help="the Selector calls the Executor at its TCP address, not on its Unix socket")
    return p.parse_args(argv)


def settings_from(args):
    from pathlib import Path

    from modipick.cli.suite import SuiteSettings

    return SuiteSettings(host=args.host, selector_port=args.selector_port, executor_port=args.executor_port,
                         profiler_port=args.profiler_port, redis_url=args.redis_url,
                         model_base=Path(args.model_base).expanduser() if args.model_base else None,
                         pool=args.pool, policy=args.policy, threshold_ms=args.threshold_ms, seed=args.seed,
                         profile_refresh_ms=args.profile_refresh_ms, serving_overhead=args.serving_overhead_ms,
                         log_level=args.log_level, execute_socket=not args.no_execute_socket)


async def run(settings) -> None:
    from modipick.cli.suite import Suite

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with Suite(settings) as suite:
        print("modipick is up:", *suite.describe(), "Ctrl-C stops everything.", sep="\n  ", flush=True)
        await stop.wait()
        print("stopping ...", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse(list(sys.argv[1:] if argv is None else argv))
    from modipick.cli.suite import SuiteError
    from modipick.runtime.logging import configure_logging

    configure_logging(level=args.log_level)
    try:
        asyncio.run(run(settings_from(args)))
    except SuiteError as exc:
        print(f"modipick up: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
