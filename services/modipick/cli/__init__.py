"""`modipick` command: one entry point, each subcommand imported only when used (so the
Selector and Profiler never import TensorFlow, and `modipick sim` never imports gRPC)."""

from __future__ import annotations

import importlib
import sys

# subcommand -> (module, function, one-line help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "sim": ("modipick.sim.cli", "main", "simulate policies on model/network profiles (paper reproduction)"),
    "demo": ("modipick.cli.demo", "main", "bring the suite up and send labelled digits through it"),
    "up": ("modipick.cli.up", "main", "start Profiler, Executor and Selector on this machine"),
    "selector": ("modipick.selector.__main__", "main", "run a Selector"),
    "profiler": ("modipick.profiler.__main__", "main", "run a Profiler"),
    "executor": ("modipick.executor.__main__", "main", "run an Executor"),
    "zoo": ("modipick.zoo.cli", "main", "build model pools as SavedModels in TF Serving layout"),
    "infer": ("modipick.client.cli", "main", "send one image through a Selector"),
    "loadgen": ("modipick.loadgen.cli", "main", "replay network traces as load against the suite"),
    "traces": ("modipick.loadgen.tracelist", "main", "list the real network traces (shipped and added)"),
}


def version() -> str:
    from importlib import metadata

    try:
        return metadata.version("modipick")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def usage() -> str:
    lines = ["usage: modipick [--version] COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<10} {help_}" for name, (_, _, help_) in COMMANDS.items()]
    lines += ["", "`modipick COMMAND --help` lists a command's flags; each flag's default can also come from",
              "the environment variable named in its help ([env MODIPICK_...; default ...])."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        print(f"modipick {version()}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"modipick: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module, func, _ = COMMANDS[name]
    return int(getattr(importlib.import_module(module), func)(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
