"""`modipick sim uploads`: choosing the input size per request vs fixed sizes, on bandwidth traces."""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

from modipick.core.policies import LIVE_POLICIES
from modipick.core.uploads import DeviceFallback
from modipick.sim.errors import SimInputError

DEFAULT_SIZES = "96,128,160,192,224,299,331"
DEFAULT_SLAS = "100,150,200,250,300,400,500"
# The paper's Figure 3: MobileNet 0.25 averages about 150 ms on the MotoX (its accuracy: slim's 224 px figure).
DEFAULT_DEVICE = "49.8:150"


def add_parser(sub: Any, common: Any) -> None:
    p = sub.add_parser("uploads", help="choose the upload (input size) per request: fixed sizes, adaptive, oracle")
    common(p, requests=8_000)
    p.add_argument("--traces", action="append", default=[], metavar="NAME[=GLOB]",
                   help="a trace set: NAME=GLOB of bandwidth traces, or lte|lte_driving|3g|wifi under "
                        "--traces-dir (repeatable; default: all four)")
    p.add_argument("--traces-dir", type=Path, default=None, help="folder holding the named trace sets")
    p.add_argument("--models", default="sized",
                   help="CSV with model,input_size,top1_accuracy_pct,mean_ms,std_ms (packaged: sized)")
    p.add_argument("--sizes", default=DEFAULT_SIZES, help=f"JPEG input sizes of the ladder, px ({DEFAULT_SIZES})")
    p.add_argument("--quality", type=int, default=90, help="JPEG quality of the ladder (90)")
    p.add_argument("--sla", default=DEFAULT_SLAS, help=f"SLA points ({DEFAULT_SLAS})")
    p.add_argument("--policy", default="risk_aware", help="the Selector's policy (risk_aware)")
    p.add_argument("--interval-ms", type=float, default=500.0, help="between one client's requests (500)")
    p.add_argument("--base-ms", type=float, default=20.0,
                   help="one-way latency independent of the payload; also the reply leg (20)")
    p.add_argument("--device", default=DEFAULT_DEVICE,
                   help=f"ACCURACY:T_D_MS of the on-device model, or 'none' ({DEFAULT_DEVICE})")
    p.add_argument("--window", type=int, default=4, help="measured uploads the bandwidth estimate keeps (4)")
    p.add_argument("--decay", type=float, default=0.5,
                   help="weight of an older remembered upload relative to the next newer one, (0, 1] (0.5)")
    p.add_argument("--history", type=int, default=48,
                   help="measured uploads the long view of the link keeps (48)")
    p.add_argument("--long-weight", type=float, default=0.6,
                   help="share of the long view in the upload-time distribution, [0, 1] (0.6)")
    p.add_argument("--default-size", type=int, default=224,
                   help="px sent before a client has measured its bandwidth; 0 = the 330 KB original (224)")
    p.add_argument("--figures-dir", type=Path, help="write uploads_*.png here instead of --out")


def _device(text: str) -> DeviceFallback:
    if text == "none":
        return DeviceFallback()
    acc, sep, ms = text.partition(":")
    try:
        device = DeviceFallback(float(acc), float(ms))
    except ValueError:
        raise SimInputError(f"--device {text!r}: expected ACCURACY:T_D_MS or none") from None
    if not sep or not (0 <= device.accuracy <= 100 and device.latency_ms > 0 and math.isfinite(device.latency_ms)):
        raise SimInputError(f"--device {text!r}: expected ACCURACY (0..100):T_D_MS (> 0)")
    return device


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise SimInputError(f"--sizes {text!r}: expected whole numbers of px") from None
    if not sizes or any(s < 8 for s in sizes):
        raise SimInputError(f"--sizes {text!r}: expected sizes >= 8 px")
    return sizes


def cmd_uploads(args: argparse.Namespace) -> int:
    from modipick.sim import uploadreport as report
    from modipick.sim.paths import search_path
    from modipick.sim.payloads import measure_ladder
    from modipick.sim.scenario import parse_seeds, parse_sla
    from modipick.sim.uploadsim import KNOWN_SETS, UploadConfig, load_sized_models, simulate, trace_sets

    if args.policy not in LIVE_POLICIES:
        raise SimInputError(f"--policy {args.policy!r}: expected one of {', '.join(LIVE_POLICIES)}")
    for flag, value in (("--interval-ms", args.interval_ms), ("--base-ms", args.base_ms)):
        if not (math.isfinite(value) and value >= 0):
            raise SimInputError(f"{flag} {value!r}: must be a number >= 0")
    if args.window < 1:
        raise SimInputError(f"--window {args.window}: must be >= 1")
    if not 0 < args.decay <= 1:
        raise SimInputError(f"--decay {args.decay}: must be in (0, 1]")
    if args.history < 1:
        raise SimInputError(f"--history {args.history}: must be >= 1")
    if not 0 <= args.long_weight <= 1:
        raise SimInputError(f"--long-weight {args.long_weight}: must be in [0, 1]")
    if not 1 <= args.quality <= 95:
        raise SimInputError(f"--quality {args.quality}: must be in 1..95")
    sizes = _sizes(args.sizes)
    if args.default_size and args.default_size not in sizes:
        raise SimInputError(f"--default-size {args.default_size}: not one of --sizes ({args.sizes}) nor 0")
    specs = args.traces or list(KNOWN_SETS)
    sets = trace_sets(specs, search_path([args.traces_dir] if args.traces_dir else []), skip_missing=not args.traces)
    if not sets:
        raise SimInputError("no known trace set found: give --traces NAME=GLOB or --traces-dir")
    models = load_sized_models(args.models)
    ladder = measure_ladder(sizes, args.quality)
    seeds = parse_seeds(args.seeds)
    if len(seeds) != 1:
        raise SimInputError(f"--seeds {args.seeds!r}: uploads takes one seed")
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SimInputError(f"--out {str(args.out)!r}: cannot write ({e.strerror or e})") from None
    rows = []
    started = time.monotonic()
    for ts in sets:
        cfg = UploadConfig(parse_sla(args.sla), args.requests, seeds[0], args.interval_ms, args.base_ms, args.policy,
                           _device(args.device), args.window, args.default_size, args.decay, args.history,
                           args.long_weight)
        rows.extend(simulate(ts, ladder, models, cfg))
        if not args.quiet:
            print(f"modipick sim uploads: {ts.name} ({len(ts.files)} traces) done at "
                  f"{time.monotonic() - started:.1f}s", file=sys.stderr)
    written = [report.write_csv(rows, args.out / "uploads.csv"),
               report.write_payloads(ladder, args.out / "payloads.csv")]
    checks = report.evaluate(rows)
    server = report.evaluate(rows, "effective_server_pct")
    md = (report.table_markdown(rows) + "\n" + report.targets_markdown(checks, "Targets, device answers counted")
          + "\n" + report.targets_markdown(server, "Targets, server only (miss = 0)"))
    (args.out / "targets.md").write_text(md, encoding="utf-8")
    written.append(args.out / "targets.md")
    figures = args.figures_dir or args.out
    for ts in sets:
        written.append(report.plot_set(rows, ts.name, figures / f"uploads_{ts.name}.png"))
    for path in written:
        print(f"wrote {path}")
    print(md)
    return 0
