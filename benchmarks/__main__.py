"""Every benchmark with a target, one after the other (`make bench`); results go in docs/benchmarks.md.

    python -m benchmarks [NAME ...]      # default: all of TARGETED, in that order

Run them on a quiet machine: each prints the machine's load average, and the Selector benchmarks
share its cores with their own load. The others (proxy_hop_latency, selector_hot_path,
reliability_report) are diagnostics, run by name with `python -m benchmarks.NAME`.
"""

from __future__ import annotations

import importlib
import sys
import time

TARGETED = ("profile_updates", "policy_decision", "selector_overhead", "selector_auth_overhead", "selector_throughput",
            "loadgen_open_loop")


def main(argv: list[str]) -> int:
    names = argv or list(TARGETED)
    unknown = [n for n in names if n not in TARGETED]
    if unknown:
        print(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(TARGETED)}", file=sys.stderr)
        return 2
    for name in names:
        print(f"\n=== {name} ({time.strftime('%Y-%m-%d %H:%M')})", flush=True)
        status = importlib.import_module(f"benchmarks.{name}").main([])
        if status:
            return status
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
