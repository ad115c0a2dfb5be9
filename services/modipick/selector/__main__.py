"""`modipick selector`: run one Selector (any number of replicas may share one Redis)."""

from __future__ import annotations

import sys
from typing import Mapping

from modipick.runtime.config import EnvArgumentParser, non_negative_float, positive_float, positive_int, probability
from modipick.runtime.entrypoint import add_server_options, run_service, serve_app, server_settings
from modipick.selector.metrics import SelectorMetrics
from modipick.selector.budget import BudgetRules, parse_overhead


def parse_settings(argv: list[str], environ: Mapping[str, str] | None = None):
    from modipick.core.policies import LIVE_POLICIES
    from modipick.core.returnleg import PRIORS
    from modipick.selector.app import SelectorSettings
    from modipick.selector.returnlegs import ReturnLegSettings, parse_return_leg_mode

    p = EnvArgumentParser(prog="modipick selector", description=__doc__, environ=environ)
    p.add_option("--listen", default="0.0.0.0:50051", help="address to serve on")
    p.add_option("--redis-url", default="redis://127.0.0.1:6379/0",
                 help="profile store: redis:// or rediss:// URL ('memory' serves nothing useful alone)",
                 secret=True)
    p.add_option("--executor-target", default="127.0.0.1:50052",
                 help="Executor address; replicas comma-separated (a:50052,b:50052), one dns:///name, or "
                      "unix:PATH for an Executor on this host (its --listen-unix)")
    p.add_option("--profiler-target", default="127.0.0.1:50053",
                 help="Profiler address for outcome reports ('' to drop them)")
    p.add_option("--policy", default="risk_aware", choices=LIVE_POLICIES, help="default selection policy")
    p.add_option("--threshold-ms", default=20.0, type=non_negative_float, help="ModiPick T_threshold")
    p.add_option("--min-meet-probability", default=0.5, type=probability,
                 help="risk_aware: answer RUN_ON_DEVICE at once when no model has at least this chance of "
                      "meeting the SLA (a miss answers at the SLA's end, too late for the device's model)")
    p.add_option("--seed", default=0, type=int,
                 help="RNG seed: replicas with the same seed and profiles choose alike per request id")
    p.add_option("--profile-refresh-ms", default=500.0, type=positive_float,
                 help="reload profiles from the store this often (the staleness bound)")
    p.add_option("--max-clock-skew-ms", default=1000.0, type=non_negative_float,
                 help="tolerated client clock skew for client_send_time")
    p.add_option("--return-leg", default="learned",
                 help="return leg: 'learned' (per client from outcome reports, for risk_aware; the others "
                      "assume it equals the upload), 'mirror' (= upload for every policy) or fixed ms")
    p.add_option("--return-prior", default="mirror", choices=PRIORS,
                 help="learned return leg before a client's first 20 reports: 'mirror' or 'uploads'")
    p.add_option("--return-leg-clients", default=2_000, type=positive_int,
                 help="clients whose return legs are learned, ~13 KB each (least recently seen forgotten first)")
    p.add_option("--return-leg-sharing", default="auto", choices=("auto", "store", "local"),
                 help="learned return legs: 'store' (every replica learns every replica's reports through the "
                      "Profiler's stream in Redis), 'local' (only the reports reaching this replica), 'auto' "
                      "(store with a Redis store and a Profiler)")
    p.add_option("--budget-from", default="deadline", choices=("deadline", "send-time"),
                 help="time left: the call's gRPC deadline (falls back to the send time without one), "
                      "or always the client's send time")
    p.add_option("--serving-overhead-ms", default="0",
                 help="time the Selector adds around a model's run, taken off the budget: ms, or 'auto' (learned)")
    add_server_options(p, downstream="Executor/Profiler", downstream_pronoun="them", redis=True, inflight=True)
    args = p.parse_args(argv)
    try:
        leg_mode, return_leg = parse_return_leg_mode(args.return_leg)
    except ValueError as exc:
        p.error(f"--return-leg: {exc}")
    try:
        overhead = parse_overhead(args.serving_overhead_ms)
    except ValueError as exc:
        p.error(f"--serving-overhead-ms: {exc}")
    settings = SelectorSettings(
        address=args.listen, store_url=args.redis_url, executor_target=args.executor_target,
        profiler_target=args.profiler_target, policy=args.policy,
        policy_params={"threshold_ms": args.threshold_ms}, min_meet_probability=args.min_meet_probability,
        seed=args.seed, refresh_ms=args.profile_refresh_ms,
        rules=BudgetRules(max_clock_skew_ms=args.max_clock_skew_ms, return_estimate_ms=return_leg,
                          use_deadline=args.budget_from == "deadline"),
        return_legs=ReturnLegSettings(mode=leg_mode, fixed_ms=return_leg, prior=args.return_prior,
                                      clients=args.return_leg_clients, sharing=args.return_leg_sharing),
        serving_overhead_ms=overhead,
        **server_settings(p, args))
    return settings, args


async def serve(settings, metrics_port: int = 0) -> None:
    from modipick.selector.app import start_selector

    await serve_app(start_selector, settings, SelectorMetrics(), metrics_port)


def main(argv: list[str] | None = None) -> int:
    settings, args = parse_settings(list(sys.argv[1:] if argv is None else argv))
    from modipick.stores import StoreConfigError

    return run_service("selector", args, lambda: serve(settings, args.metrics_port),
                       bad_config=(StoreConfigError,), bad_config_flag="--redis-url")


if __name__ == "__main__":
    sys.exit(main())
