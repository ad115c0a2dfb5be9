"""`modipick selector`: run one Selector (any number of replicas may share one Redis)."""

from __future__ import annotations

import argparse
import sys
from typing import Mapping

from modipick.runtime.config import EnvArgumentParser, non_negative_float, positive_float, positive_int, probability
from modipick.runtime.entrypoint import add_server_options, run_service, serve_app, server_settings
from modipick.runtime.security_options import (add_client_auth_options, add_service_token_option, add_ticket_options,
                                               client_auth_settings, service_token, ticket_keys)
from modipick.selector.metrics import SelectorMetrics
from modipick.selector.budget import BudgetRules, parse_overhead
from modipick.stores.redis_options import URL_PREFIXES


def _oip_models(text: str) -> tuple[str, ...]:
    from modipick.selector.oip import parse_model_names

    try:
        return parse_model_names(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


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
    p.add_option("--return-leg-class-share", default=0.05, type=probability,
                 help="a network class's model takes at most this share of its window from any one client "
                      "(below 0.5), so no client steers the estimates of the others")
    p.add_option("--return-leg-class-clients", default=3, type=positive_int,
                 help="clients that must have reported before a network class's model decides for others")
    p.add_option("--return-leg-max-slas", default=10.0, type=positive_float,
                 help="an outcome report whose return leg is longer than this many times its request's SLA "
                      "is refused (INVALID_ARGUMENT) and not learned")
    p.add_option("--return-leg-sharing", default="auto", choices=("auto", "store", "local", "partitioned"),
                 help="learned return legs: 'partitioned' (each client's model in Redis, one key per client, "
                      "read with its decisions: no replica replays other replicas' reports), 'store' (every "
                      "replica learns every replica's reports through the Profiler's stream in Redis), 'local' "
                      "(only the reports reaching this replica), 'auto' (partitioned with a Redis store, else "
                      "local)")
    p.add_option("--client-leg-ttl-s", default=6 * 3600.0, type=positive_float,
                 help="partitioned return legs: a client's state expires this long after its last report")
    p.add_option("--client-leg-cache-s", default=2.0, type=non_negative_float,
                 help="partitioned return legs: a replica decides with a client's ready model read this "
                      "recently before reading it again")
    p.add_option("--budget-from", default="deadline", choices=("deadline", "send-time"),
                 help="time left: the call's gRPC deadline (falls back to the send time without one), "
                      "or always the client's send time")
    p.add_option("--serving-overhead-ms", default="0",
                 help="time the Selector adds around a model's run, taken off the budget: ms, or 'auto' (learned)")
    p.add_option("--oip-models", default="", type=_oip_models,
                 help="also serve the Open Inference Protocol (KServe v2, inference.GRPCInferenceService) on "
                      "--listen for these model names, comma-separated: Triton/KServe/MLServer clients call them "
                      "and each request picks from the whole pool (empty: off)")
    add_server_options(p, downstream="Executor/Profiler", downstream_pronoun="them", redis=True, inflight=True)
    add_client_auth_options(p)
    add_ticket_options(p)
    add_service_token_option(p)
    args = p.parse_args(argv)
    try:
        leg_mode, return_leg = parse_return_leg_mode(args.return_leg)
    except ValueError as exc:
        p.error(f"--return-leg: {exc}")
    if args.return_leg_class_share >= 0.5:
        p.error(f"--return-leg-class-share: must be below 0.5, got {args.return_leg_class_share!r}")
    try:
        overhead = parse_overhead(args.serving_overhead_ms)
    except ValueError as exc:
        p.error(f"--serving-overhead-ms: {exc}")
    if args.return_leg_sharing == "partitioned" and not args.redis_url.lower().startswith(URL_PREFIXES):
        p.error(f"--return-leg-sharing partitioned: needs a Redis store (--redis-url redis://..., "
                f"redis+sentinel://... or redis+cluster://...), got "
                f"{args.redis_url.split('://')[0]!r}")
    settings = SelectorSettings(
        address=args.listen, store_url=args.redis_url, executor_target=args.executor_target,
        profiler_target=args.profiler_target, policy=args.policy,
        policy_params={"threshold_ms": args.threshold_ms}, min_meet_probability=args.min_meet_probability,
        seed=args.seed, refresh_ms=args.profile_refresh_ms,
        rules=BudgetRules(max_clock_skew_ms=args.max_clock_skew_ms, return_estimate_ms=return_leg,
                          use_deadline=args.budget_from == "deadline"),
        return_legs=ReturnLegSettings(mode=leg_mode, fixed_ms=return_leg, prior=args.return_prior,
                                      clients=args.return_leg_clients, sharing=args.return_leg_sharing,
                                      class_share=args.return_leg_class_share,
                                      class_min_clients=args.return_leg_class_clients,
                                      max_leg_slas=args.return_leg_max_slas),
        serving_overhead_ms=overhead,
        client_leg_ttl_s=args.client_leg_ttl_s, client_leg_cache_s=args.client_leg_cache_s,
        oip_models=args.oip_models,
        client_auth=client_auth_settings(p, args), service_token=service_token(p, args),
        **security_settings(p, args), **server_settings(p, args))
    return settings, args


def security_settings(parser, args):
    from modipick.selector.report_limits import ReportLimits
    from modipick.selector.tickets import TicketKeys

    try:
        keys = TicketKeys(*ticket_keys(parser, args))
    except ValueError as exc:
        parser.error(f"--ticket-key: {exc}")
    return {"ticket_keys": keys,
            "report_limits": ReportLimits(rate_per_s=args.report_rate_per_s, burst=args.report_burst)}


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
