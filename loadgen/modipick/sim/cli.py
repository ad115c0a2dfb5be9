"""`modipick sim run|paper|scenarios`: simulate selection policies; see docs/paper-reproduction.md.

Bad input (file, row, value, flag) -> one line on stderr naming it, exit code 2, no traceback.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from modipick.runtime.config import EnvArgumentParser
from modipick.sim.engine import decisions, run_scenarios
from modipick.sim.errors import SimInputError
from modipick.sim.paths import search_path
from modipick.sim.progress import NoProgress, Progress
from modipick.sim.report import write_outputs
from modipick.sim.runner import PointResult
from modipick.sim.scenario import ColdStart, Drift, Learning, Scenario

DEFAULT_RUN_POLICIES = "modipick,dynamic_greedy,static_greedy,oracle"


class _Parser(EnvArgumentParser):
    def error(self, message: str):  # one line, no usage dump
        raise SimInputError(f"{self.prog}: {message}")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 1")
    return value


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 0")
    return value


def _common(p: argparse.ArgumentParser, *, requests: int, out_required: bool = True) -> None:
    p.add_argument("--out", required=out_required, type=Path, help="output directory (summary.csv, model_usage.csv, ...)")
    p.add_argument("--requests", type=_positive_int, default=requests, help=f"requests per SLA point and seed ({requests})")
    p.add_argument("--seeds", default="1", help="comma-separated seeds; results are pooled over them (1)")
    p.add_argument("--threshold-ms", type=_non_negative, default=None,
                   help="ModiPick's T_threshold for every policy that takes one (default: core's)")
    p.add_argument("--jobs", type=_positive_int, default=1, help="worker processes (1)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")


def build_parser(environ: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    parser = _Parser(prog="modipick sim", description=__doc__.splitlines()[0], environ=environ, env_all=True)
    sub = parser.add_subparsers(dest="command", required=True,
                                parser_class=functools.partial(_Parser, environ=environ, env_all=True))

    run = sub.add_parser("run", help="one scenario from flags")
    _common(run, requests=10_000)
    run.add_argument("--scenario", default="run", help="scenario name written in the outputs (run)")
    run.add_argument("--models", default="table2", help="model CSV (columns of table2.csv) or table2|profiles_cpu_c5")
    run.add_argument("--first", type=_positive_int, help="use only the first N models of the CSV")
    run.add_argument("--exclude", action="append", default=[], metavar="MODEL", help="leave a model out (repeatable)")
    run.add_argument("--network", default="campus_wifi",
                     help="PROFILE[:gamma] | dist:normal|gamma:MEAN:CV | trace:FILE | bwtrace:GLOB (campus_wifi)")
    run.add_argument("--networks-csv", default="networks", help="network profiles CSV (packaged networks.csv)")
    run.add_argument("--payload-bytes", type=_positive_int, default=330_000, help="payload for bwtrace: (330000)")
    run.add_argument("--return-leg", default="mirror", choices=("mirror", "independent", "paired"),
                     help="mirror = upload leg (the authors' simulator), independent draw, or paired trace column")
    run.add_argument("--return-model", default="none", choices=("none", "learned", "uploads", "known"),
                     help="give policies an online-learned return-leg distribution (none)")
    run.add_argument("--report-lag", type=int, default=0,
                     help="with a learned return model: requests decided before a return leg is reported (0)")
    run.add_argument("--sla", default="50:300:10", help="SLA points: START:STOP:STEP or a list (50:300:10)")
    run.add_argument("--policies", default=DEFAULT_RUN_POLICIES,
                     help=f"comma-separated, NAME or NAME(key=value,...) ({DEFAULT_RUN_POLICIES})")
    run.add_argument("--learn", action="store_true", help="profiles learn by EWMA from observed times")
    run.add_argument("--alpha", type=float, default=0.1, help="EWMA alpha with --learn (0.1)")
    run.add_argument("--reprobe-every", type=int, default=0,
                     help="with --learn: observe every model every N requests, off the request path (0: never)")
    run.add_argument("--detect-run", type=int, default=0,
                     help="with --learn: re-seed a profile after N consecutive outliers, the change "
                          "detector the Profiler should run (modipick.core.changes; 0: plain EWMA)")
    run.add_argument("--drift", action="append", default=[], metavar="MODEL:FACTOR:START:END",
                     help="MODEL runs FACTOR times slower for requests START..END-1 (repeatable)")
    run.add_argument("--cold", action="append", default=[], metavar="MODEL[:MEAN:STD]",
                     help="MODEL starts with no profile, or with this (poor) one (repeatable)")

    paper = sub.add_parser("paper", help="the paper's Figures 6a, 6b, 7, 8, 9 as PNG")
    _common(paper, requests=10_000)
    paper.add_argument("--models", default="table2", help="model CSV (table2)")
    paper.add_argument("--networks-csv", default="networks", help="network profiles CSV (packaged networks.csv)")
    paper.add_argument("--figures-dir", type=Path, help="write the PNGs here instead of --out")

    scen = sub.add_parser("scenarios", help="scenarios where the paper's algorithm loses")
    _common(scen, requests=10_000, out_required=False)
    scen.add_argument("--only", help="comma-separated scenario names (default: all; see --list)")
    scen.add_argument("--list", action="store_true", help="print the scenarios and exit")
    scen.add_argument("--policies", default=None, help="policies to run (default modipick,dynamic_greedy,oracle)")
    scen.add_argument("--return-model", default="none", choices=("none", "learned", "uploads", "known"),
                      help="give policies an online-learned return-leg distribution (none)")
    scen.add_argument("--traces-dir", type=Path, action="append", default=[], metavar="DIR",
                      help="also look traces up here (repeatable), before env MODIPICK_TRACES_DIR and the "
                           "shipped traces (`modipick traces list`)")
    rep = sub.add_parser("policy-report", help="the candidate default policy vs ModiPick, dynamic "
                         "greedy and the oracle on every scenario; targets checked, plots drawn")
    _common(rep, requests=10_000)
    rep.add_argument("--policy", default="risk_aware", help="the candidate, NAME or NAME(key=value,...) (risk_aware)")
    rep.add_argument("--only", help="comma-separated scenario names (default: the report's set)")
    rep.add_argument("--figures-dir", type=Path, help="write the policy_*.png here instead of --out")
    rep.add_argument("--traces-dir", type=Path, default=None, help="folder of the real network traces")
    from modipick.sim.uploadcli import add_parser as add_uploads

    add_uploads(sub, _common)
    return parser


def _split_model_spec(text: str, parts: int, flag: str) -> list[str]:
    pieces = text.rsplit(":", parts - 1)
    if len(pieces) != parts:
        raise SimInputError(f"{flag} {text!r}: expected {'MODEL:FACTOR:START:END' if parts == 4 else 'MODEL:MEAN:STD'}")
    return pieces


def _drift(text: str) -> Drift:
    model, factor, start, end = _split_model_spec(text, 4, "--drift")
    try:
        return Drift(model, float(factor), int(start), int(end))
    except ValueError:
        raise SimInputError(f"--drift {text!r}: FACTOR must be a number, START and END integers") from None


def _cold(text: str) -> ColdStart:
    if text.count(":") < 2:
        return ColdStart(text)
    model, mean, std = _split_model_spec(text, 3, "--cold")
    try:
        mean_ms, std_ms = float(mean), float(std)
    except ValueError:
        raise SimInputError(f"--cold {text!r}: MEAN and STD must be numbers") from None
    if not (mean_ms >= 0 and std_ms >= 0):
        raise SimInputError(f"--cold {text!r}: MEAN and STD must be >= 0")
    return ColdStart(model, mean_ms, std_ms)


def scenario_from_args(args: argparse.Namespace) -> Scenario:
    from modipick.sim.models import load_models, select_models
    from modipick.sim.networks import parse_network
    from modipick.sim.scenario import parse_policies, parse_seeds, parse_sla

    models = select_models(load_models(args.models), first=args.first, exclude=tuple(args.exclude))
    network = parse_network(args.network, networks_csv=args.networks_csv, payload_bytes=args.payload_bytes)
    defaults: dict[str, Any] = {} if args.threshold_ms is None else {"threshold_ms": args.threshold_ms}
    learning = Learning(args.alpha, args.reprobe_every, args.detect_run) if args.learn else None
    if not args.learn and (args.reprobe_every or args.alpha != 0.1 or args.detect_run):
        raise SimInputError("--alpha/--reprobe-every/--detect-run need --learn")
    if args.reprobe_every < 0:
        raise SimInputError(f"--reprobe-every {args.reprobe_every}: must be >= 0")
    if args.detect_run < 0:
        raise SimInputError(f"--detect-run {args.detect_run}: must be >= 0")
    return Scenario(args.scenario, models, network, args.return_leg, parse_sla(args.sla), args.requests,
                    parse_seeds(args.seeds), parse_policies(args.policies, defaults), learning=learning,
                    drifts=tuple(_drift(d) for d in args.drift), cold=tuple(_cold(c) for c in args.cold),
                    return_model=args.return_model, report_lag=args.report_lag)


def execute(scenarios: Sequence[Scenario], args: argparse.Namespace, label: str) -> list[PointResult]:
    total = decisions(scenarios)
    progress = NoProgress() if args.quiet else Progress(total, f"modipick sim {label}")
    started = time.monotonic()
    results = run_scenarios(scenarios, jobs=args.jobs, progress=progress)
    try:
        written = write_outputs(results, args.out)
    except OSError as e:
        raise SimInputError(f"--out {str(args.out)!r}: cannot write ({e.strerror or e})") from None
    if not args.quiet:
        print(f"modipick sim {label}: {total} decisions in {time.monotonic() - started:.1f}s", file=sys.stderr)
    for path in written:
        print(f"wrote {path}")
    return results


def print_table(results: Sequence[PointResult]) -> None:
    print(f"{'scenario':<26} {'policy':<24} {'sla_ms':>7} {'attain%':>8} {'acc%':>6} {'eff_acc%':>8} {'e2e_ms':>8}")
    for r in results:
        print(f"{r.scenario:<26} {r.policy:<24} {r.sla_ms:>7g} {r.attainment_pct:>8.2f} "
              f"{r.mean_accuracy_pct:>6.2f} {r.effective_accuracy_pct:>8.2f} {r.mean_e2e_ms:>8.1f}")


def cmd_run(args: argparse.Namespace) -> int:
    results = execute([scenario_from_args(args)], args, "run")
    print_table(results)
    return 0


def cmd_paper(args: argparse.Namespace) -> int:
    from modipick.sim.paper import PaperConfig, draw_figures, paper_scenarios
    from modipick.sim.scenario import parse_seeds

    cfg = PaperConfig(requests=args.requests, seeds=parse_seeds(args.seeds), threshold_ms=args.threshold_ms,
                      models=args.models, networks_csv=args.networks_csv)
    scenarios = paper_scenarios(cfg)
    results = execute(scenarios, args, "paper")
    for path in draw_figures(scenarios, results, args.figures_dir or args.out):
        print(f"wrote {path}")
    from modipick.sim.claims import claims_markdown

    claims = claims_markdown(results)
    (args.out / "claims.md").write_text(claims, encoding="utf-8")
    print(f"wrote {args.out / 'claims.md'}\n\n{claims}")
    return 0


def cmd_scenarios(args: argparse.Namespace) -> int:
    from modipick.sim import scenarios as recipes
    from modipick.sim.scenario import parse_seeds

    if args.list:
        for recipe in recipes.RECIPES:
            print(f"{recipe.name:<26} {recipe.about}")
        return 0
    if args.out is None:
        raise SimInputError("modipick sim scenarios: the following arguments are required: --out")
    opts = recipes.Options(requests=args.requests, seeds=parse_seeds(args.seeds),
                           policies=args.policies or recipes.DEFAULT_POLICIES, threshold_ms=args.threshold_ms,
                           traces_dirs=search_path(args.traces_dir), return_model=args.return_model)
    names = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else None
    results = execute(recipes.build(names, opts), args, "scenarios")
    print_table(results)
    return 0


def cmd_policy_report(args: argparse.Namespace) -> int:
    from modipick.sim import policyplots, policyreport
    from modipick.sim import scenarios as recipes
    from modipick.sim.policytargets import evaluate
    from modipick.sim.scenario import parse_policies, parse_seeds

    try:
        candidate = parse_policies(args.policy)
    except SimInputError as e:
        raise SimInputError(str(e).replace("--policies", "--policy", 1)) from None
    if len(candidate) != 1 or candidate[0].is_oracle:
        raise SimInputError(f"--policy {args.policy!r}: name one live policy")
    label = candidate[0].label
    opts = recipes.Options(requests=args.requests, seeds=parse_seeds(args.seeds), threshold_ms=args.threshold_ms,
                           traces_dirs=search_path())
    names = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else None
    scenarios = policyreport.build_scenarios(label, opts, names)
    results = execute(scenarios, args, "policy-report")
    checks = evaluate(results, label)
    report = args.out / "report.md"
    report.write_text(policyreport.report_markdown(results, label, checks, scenarios), encoding="utf-8")
    print(f"wrote {report}")
    for path in policyplots.draw_all(results, label, args.figures_dir or args.out):
        print(f"wrote {path}")
    print(policyreport.targets_table(checks))
    return 0 if all(c.met for c in checks) else 1


def cmd_uploads(args: argparse.Namespace) -> int:
    from modipick.sim.uploadcli import cmd_uploads as run

    return run(args)


COMMANDS = {"run": cmd_run, "paper": cmd_paper, "scenarios": cmd_scenarios, "policy-report": cmd_policy_report,
            "uploads": cmd_uploads}


def main(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser(environ).parse_args(argv)
        return COMMANDS[args.command](args)
    except SimInputError as e:
        message = str(e)
        print(message if message.startswith("modipick sim") else f"modipick sim: {message}", file=sys.stderr)
        return 2
    except SystemExit as e:  # --help
        return int(e.code or 0)


if __name__ == "__main__":
    sys.exit(main())
