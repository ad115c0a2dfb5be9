"""`modipick loadgen`: replay network traces as open-loop load against a Selector.

  modipick loadgen run     --target HOST:PORT --network SPEC --sla 100,150 [--compare a,b] [--report DIR]
  modipick loadgen stats   SPEC...            per-request upload-leg statistics of networks
  modipick loadgen report  RECORDS.csv --out DIR       re-draw a report from saved records
  modipick loadgen trivial-server [--port N]  a stand-in Selector (tests, examples)
  modipick loadgen link    --upstream HOST:PORT --network TRACE [--port N]   a standalone shaped link

Bad input exits 2 with one line naming the file, line or value.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Mapping, Sequence

from modipick.loadgen.errors import LoadgenInputError
from modipick.loadgen.thresholds import METRICS, parse_threshold
from modipick.runtime.config import EnvArgumentParser

DEFAULT_TARGET = "127.0.0.1:50051"


def _floats(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one number")
    return values


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
        return value
    return parse


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a share in [0, 1], got {text!r}")
    return value


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def _add_network_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("network")
    g.add_argument("--request-bytes", type=int, default=330_000, help="request (image) size [330000]")
    g.add_argument("--response-bytes", type=int, default=1_000,
                   help="reply size [1000]; 330000 gives the paper's symmetric network (return = upload)")
    g.add_argument("--base-rtt-ms", type=_non_negative, default=0.0, help="propagation RTT, half per leg [0]")
    g.add_argument("--trace-format", default="auto", choices=["auto", "mahimahi", "throughput", "requests"])
    g.add_argument("--rate-unit", default="auto", help="throughput unit: auto, bps, kbps, mbps, Bps, KBps, MBps")
    g.add_argument("--anchor", default="auto", choices=["auto", "start", "end"],
                   help="throughput sample holds from its time (start) or until it (end)")
    g.add_argument("--traces-dir", action="append", default=[], metavar="DIR",
                   help="also look relative trace paths up here (repeatable), before env MODIPICK_TRACES_DIR "
                        "and the shipped traces (`modipick traces list`)")
    g.add_argument("--trace-offset-s", type=_non_negative, default=0.0, help="start this far into the trace")
    g.add_argument("--rescale-median-ms", type=_positive(float), default=None,
                   help="stretch the network so its median upload leg is this (shape kept)")
    g.add_argument("--cv-sweep", type=_floats, default=None, metavar="CV,CV,...",
                   help="add parametric networks at fixed mean with these CVs (0.5 = 50%%)")
    g.add_argument("--cv-mean-ms", type=_positive(float), default=50.0, help="mean of the CV sweep [50]")
    g.add_argument("--cv-dist", default="normal", choices=["normal", "lognormal"])


def build_parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    parser = EnvArgumentParser(prog="modipick loadgen", description="replay network traces as load against a Selector",
                               environ=environ, env_all=True)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="open-loop load; records, summary, comparison, report")
    run.add_option("--target", default=DEFAULT_TARGET, env="MODIPICK_SELECTOR_TARGET",
                   help="Selector HOST:PORT; several, comma-separated, spread the calls over those replicas "
                        "round robin (IPv4 addresses)")
    run.add_argument("--network", action="append", default=[], metavar="SPEC",
                     help="named profile (campus_wifi, home, lte, ...), param:MEAN,STD, cv:MEAN,CV or a trace "
                          "file; repeat for several")
    run.add_argument("--mode", default="realtime", choices=["direct", "realtime", "link"],
                     help="how the network is emulated [realtime]")
    run.add_argument("--sla", type=_floats, default=[150.0], metavar="MS,MS,...", help="SLA(s) in ms [150]")
    run.add_argument("--compare", default="", metavar="POLICY,POLICY",
                     help="run each policy on the same trace and seeds, print them side by side")
    run.add_argument("--arrivals", default="poisson", choices=["poisson", "constant", "trace"])
    run.add_argument("--rate", type=_positive(float), default=50.0, help="requests per second [50]")
    run.add_argument("--count", type=_positive(int), default=None, help="requests per run [500 unless --duration]")
    run.add_argument("--duration", type=_positive(float), default=None, help="seconds per run")
    run.add_argument("--concurrency", type=_positive(int), default=1024, help="max requests in flight [1024]")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--dataset", default="digits", choices=["digits", "image", "payload"],
                     help="digits: labelled sklearn digits; image: unlabelled PNG scenes (any model, e.g. "
                          "imagenet-arch); payload: opaque --request-bytes image, no label")
    run.add_argument("--image-size", type=_positive(int), default=224, help="side of --dataset image PNGs [224]")
    run.add_argument("--no-deadline", action="store_true", help="send without a gRPC deadline")
    run.add_argument("--report-outcomes", action=argparse.BooleanOptionalAction, default=True,
                     help="send ReportOutcome (e2e time, true label) for every served reply [on]")
    run.add_argument("--client-id", default=None,
                     help="InferRequest.client_id (groups return-leg learning; 'CLASS/ID' names a network "
                          "class) [a fresh one per run, so no run learns from another's reports]")
    clients = run.add_argument_group("client population")
    clients.add_argument("--clients", type=_positive(int), default=None, metavar="N",
                         help="emulate N clients (ids 'CLASS/ID', each --network a class), each with its own "
                              "offset into its class's trace [one client]")
    clients.add_argument("--zipf-s", type=_non_negative, default=1.0,
                         help="client activity: the k-th most active sends in proportion to 1/k^s (0: alike) [1]")
    clients.add_argument("--population-tag", default=None,
                         help="fixed tag in the population's ids, so another run reuses what the Selector "
                              "learned about them [a fresh tag per run]")
    clients.add_argument("--client-min-requests", type=_positive(int), default=5,
                         help="clients with fewer requests are left out of the per-client distributions [5]")
    up = run.add_argument_group("upload sizes (the SDK's choice of input size, modipick.core.uploads)")
    up.add_argument("--uploads", default="", metavar="SPEC,SPEC",
                    help="send the image scenes as JPEGs: 'adaptive' (the SDK's choice per request from the "
                         "uploads the Selector measured) and/or 'fixed:PX'; one run each, on the same trace "
                         "(needs --mode realtime, a link trace, --profiler and --manifest for the models' sizes)")
    up.add_argument("--upload-sizes", type=_floats, default=[96, 128, 160, 192, 224], metavar="PX,PX,...",
                    help="the menu of input sizes [96,128,160,192,224]")
    up.add_argument("--upload-default", type=_positive(int), default=224,
                    help="px an adaptive client sends before it has measured an upload [224]")
    up.add_argument("--upload-reply-ms", type=_non_negative, default=20.0,
                    help="the reply leg the adaptive choice budgets for [20]")
    run.add_argument("--drain-s", type=_positive(float), default=30.0, help="wait for replies after the last send")
    run.add_argument("--profiler", default=None, help="Profiler HOST:PORT for declared accuracies")
    run.add_argument("--manifest", default=None, help="zoo manifest.json for declared accuracies")
    run.add_argument("--records", default=None, help="write per-request records to this CSV")
    run.add_argument("--report", default=None, metavar="DIR", help="write report.md + PNG + CSV here")
    run.add_argument("--progress", default="auto", choices=["auto", "bar", "plain", "none"])
    checks = run.add_argument_group("pass/fail (like k6 thresholds: exit 99 when one fails)")
    checks.add_argument("--threshold", action="append", default=[], type=parse_threshold, metavar="METRIC<OP>VALUE",
                        help=f"a bar every run must pass, e.g. 'attainment>=0.9' (repeatable); metrics: "
                             f"{', '.join(METRICS)}")
    checks.add_argument("--max-error-rate", type=_fraction, default=None, metavar="RATE",
                        help="fail when more than this share of calls fail (any gRPC status but OK), e.g. 0.01")
    checks.add_argument("--summary-json", default=None, metavar="PATH",
                        help="write every run's summary, failures by reason and threshold results as JSON")
    _add_network_options(run)

    stats = sub.add_parser("stats", help="upload-leg statistics of networks (starts every 100 ms)")
    stats.add_argument("networks", nargs="+", metavar="SPEC")
    _add_network_options(stats)

    report = sub.add_parser("report", help="write a report folder from a records CSV")
    report.add_argument("records")
    report.add_argument("--out", required=True, metavar="DIR")
    report.add_argument("--profiler", default=None)
    report.add_argument("--manifest", default=None)

    trivial = sub.add_parser("trivial-server", help="serve a stand-in Selector that answers at once")
    trivial.add_argument("--host", default="127.0.0.1")
    trivial.add_argument("--port", type=int, default=50051, help="0 = any free port [50051]")
    trivial.add_argument("--policy", default="modipick", help="policy when a request names none")
    trivial.add_argument("--execute", action="store_true", help="sleep each chosen model's mean time")
    trivial.add_argument("--seed", type=int, default=0)

    link = sub.add_parser("link", help="run a shaped TCP link in front of a server (like mm-link)")
    link.add_argument("--upstream", required=True, help="HOST:PORT to forward to")
    link.add_argument("--network", required=True, metavar="TRACE", help="Mahimahi or throughput trace")
    link.add_argument("--host", default="127.0.0.1")
    link.add_argument("--port", type=int, default=0)
    _add_network_options(link)
    return parser


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(os.environ if environ is None else environ).parse_args(argv)
    from modipick.loadgen import commands

    handler = {"run": commands.run, "stats": commands.stats, "report": commands.report,
               "trivial-server": commands.trivial_server, "link": commands.link}[args.command]
    try:
        return handler(args, argv)
    except LoadgenInputError as exc:
        print(f"modipick loadgen: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"modipick loadgen: {exc}", file=sys.stderr)
        return 2
    except ConnectionError as exc:
        print(f"modipick loadgen: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
