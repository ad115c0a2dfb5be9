"""`modipick traces list [--traces-dir DIR]`: the real network traces the tools can read by a
relative name (`--network lte_mahimahi_short/TMobile-LTE-short`), where each comes from and its
licence: the traces shipped with modipick, then any folders added with --traces-dir or
MODIPICK_TRACES_DIR (folders of trace sets, each set a folder of trace files with a SOURCE.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Mapping, Sequence

from modipick.runtime.config import EnvArgumentParser


def build_parser(environ: Mapping[str, str] | None = None) -> EnvArgumentParser:
    parser = EnvArgumentParser(prog="modipick traces", description=__doc__.split("\n\n")[0], environ=environ)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=EnvArgumentParser)
    listing = sub.add_parser("list", help="list the trace sets and their traces", environ=environ)
    listing.add_argument("--traces-dir", type=Path, action="append", default=[], metavar="DIR",
                         help="also list the trace sets in DIR (repeatable) [env MODIPICK_TRACES_DIR, "
                              "several joined by ':'; default: only the shipped traces]")
    listing.add_option("--format", default="text", choices=["text", "json"], help="output format")
    return parser


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    args = build_parser(environ).parse_args(list(sys.argv[1:] if argv is None else argv))
    from modipick.loadgen.traces.catalog import search_path, trace_sets

    missing = [str(d) for d in args.traces_dir if not d.is_dir()]
    if missing:
        print(f"modipick traces: --traces-dir: no such folder: {', '.join(missing)}", file=sys.stderr)
        return 2
    sets = trace_sets(search_path(args.traces_dir, environ))
    if args.format == "json":
        print(json.dumps([{"name": s.name, "folder": str(s.folder), "shipped": s.shipped, "title": s.title,
                           "licence": s.licence, "traces": list(s.traces)} for s in sets], indent=2))
        return 0
    for s in sets:
        where = "shipped with modipick" if s.shipped else str(s.folder)
        print(f"{s.name}  ({where}; licence: {s.licence})")
        if s.title:
            print(f"  {s.title}")
        for spec in s.traces:
            print(f"    {spec}")
    print("\nUse a trace as `modipick loadgen run --network SET/TRACE`; sources and licences are in each "
          "set's SOURCE.md.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
