"""Decision time per request of every live policy, in-process: p50 and p99 in microseconds.

    python -m benchmarks.policy_decision [--paper-dir DIR] [--decisions 100000] [--repeat 3]

Models: the paper's Table 2 (K=12, table2.csv) and the authors' CPU profiles (K=23,
profiles_cpu_c5.csv). Budgets are drawn like the paper's simulation: SLA uniform in
[--sla-min, --sla-max], upload leg normal(mean, std) of a networks.csv profile (campus WiFi by
default) resampled while <= 0, return leg = upload (eq. 1). Budgets are built before timing; each
decision `policy.choose(models, budget, rng)` is timed alone with time.perf_counter_ns after a
warm-up, with the garbage collector left on (as in a service). The timer's own cost is printed
so it can be subtracted by eye. With --repeat R the table shows the median over R runs.
"""

from __future__ import annotations

import argparse
import csv
import gc
import math
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

from modipick.core import Budget, Candidate, make_policy
from modipick.core.policies import LIVE_POLICIES, Reason

TARGET = {"policy": "modipick", "K": 23, "p50_us": 20.0, "p99_us": 60.0}
TABLES = ("table2.csv", "profiles_cpu_c5.csv")
MODEL_COLUMNS = ("model", "top1_accuracy_pct", "mean_ms", "std_ms")


class BenchInputError(Exception):
    """Bad input: reported as one line, exit code 2."""


def default_paper_dir() -> Path:
    """The paper's tables as packaged with the simulator (modipick.sim's data folder)."""
    from importlib import resources

    return Path(str(resources.files("modipick.sim") / "data"))


def read_models(path: Path) -> tuple[Candidate, ...]:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in MODEL_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise BenchInputError(f"{path}: missing column {', '.join(missing)}")
            models = []
            for line, row in enumerate(reader, start=2):
                try:
                    acc, mu, sd = (float(row[c]) for c in MODEL_COLUMNS[1:])
                except (TypeError, ValueError):
                    raise BenchInputError(f"{path}:{line}: not a number in {row}") from None
                if not all(math.isfinite(v) and v >= 0 for v in (acc, mu, sd)):
                    raise BenchInputError(f"{path}:{line}: negative or non-finite number in {row}")
                models.append(Candidate(row["model"], 1, acc, mu, sd))
    except OSError as e:
        raise BenchInputError(f"{path}: {e.strerror or e}") from None
    if not models:
        raise BenchInputError(f"{path}: no model rows")
    return tuple(models)


def read_network(path: Path, name: str) -> tuple[float, float]:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                if row.get("network") == name:
                    return float(row["mean_ms"]), float(row["std_ms"])
    except OSError as e:
        raise BenchInputError(f"{path}: {e.strerror or e}") from None
    except (KeyError, TypeError, ValueError):
        raise BenchInputError(f"{path}: bad row for network {name!r}") from None
    raise BenchInputError(f"{path}: no network {name!r}")


def draw_budgets(n: int, rng: random.Random, mean_ms: float, std_ms: float, sla_min: float,
                 sla_max: float, return_leg: str = "mirror") -> list[Budget]:
    def leg() -> float:
        x = rng.gauss(mean_ms, std_ms)
        while x <= 0:
            x = rng.gauss(mean_ms, std_ms)
        return x

    learned = None
    if return_leg == "learned":  # risk_aware's input: a return leg learned from independent legs
        from modipick.core.returnleg import ReturnLegModel

        learned = ReturnLegModel()
        for _ in range(2000):
            learned.observe(leg(), leg())
    budgets = []
    for _ in range(n):
        upload = leg()
        estimate = learned.estimate(upload) if learned is not None else None
        budgets.append(Budget(sla_ms=rng.uniform(sla_min, sla_max), upload_ms=upload, return_leg=estimate))
    return budgets


def time_decisions(policy, models, budgets, warmup: int, seed: int) -> tuple[list[int], int]:
    """Nanoseconds per decision, and how many decisions fell back."""
    choose, rng, clock = policy.choose, random.Random(seed), time.perf_counter_ns
    for b in budgets[:warmup]:
        choose(models, b, rng)
    times = [0] * (len(budgets) - warmup)
    fallbacks = 0
    fallback = Reason.FALLBACK
    for i, b in enumerate(budgets[warmup:]):
        t0 = clock()
        d = choose(models, b, rng)
        times[i] = clock() - t0
        if d.reason is fallback:
            fallbacks += 1
    return times, fallbacks


def timer_overhead_ns(n: int = 100_000) -> int:
    clock = time.perf_counter_ns
    samples = []
    for _ in range(n):
        t0 = clock()
        samples.append(clock() - t0)
    samples.sort()
    return samples[len(samples) // 2]


def percentile(sorted_ns: list[int], q: float) -> float:
    return sorted_ns[min(len(sorted_ns) - 1, int(q * len(sorted_ns)))] / 1000.0


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = "n/a"
    if hasattr(os, "getloadavg"):
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"nproc={os.cpu_count()} cpu={cpu!r} python={platform.python_version()} "
            f"loadavg={load}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.policy_decision", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--paper-dir", type=Path, default=default_paper_dir(),
                    help="folder with table2.csv, profiles_cpu_c5.csv, networks.csv (default: %(default)s)")
    ap.add_argument("--tables", nargs="+", default=list(TABLES), help="model CSVs inside --paper-dir")
    ap.add_argument("--policies", nargs="+", default=list(LIVE_POLICIES), help="default: every live policy")
    ap.add_argument("--network", default="campus_wifi", help="row of networks.csv for the upload leg")
    ap.add_argument("--sla-min", type=float, default=50.0)
    ap.add_argument("--sla-max", type=float, default=300.0)
    ap.add_argument("--decisions", type=int, default=100_000, help="timed decisions per policy and table")
    ap.add_argument("--warmup", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=1, help="runs per cell; the median p50/p99 is shown")
    ap.add_argument("--threshold-ms", type=float, default=20.0, help="ModiPick's T_threshold")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--return-leg", choices=("mirror", "learned"), default="mirror",
                    help="learned: budgets carry a learned return-leg distribution (what risk_aware uses live)")
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = ap.parse_args(argv)
    if args.decisions <= 0 or args.warmup < 0 or args.repeat <= 0:
        ap.error("--decisions and --repeat must be > 0, --warmup >= 0")
    if not 0 < args.sla_min <= args.sla_max:
        ap.error(f"need 0 < --sla-min <= --sla-max, got {args.sla_min} and {args.sla_max}")
    return args


def run(args: argparse.Namespace) -> int:
    for name in args.policies:
        make_policy(name)  # unknown names fail before any timing
    net_mean, net_std = read_network(args.paper_dir / "networks.csv", args.network)
    tables = [(t, read_models(args.paper_dir / t)) for t in args.tables]
    print(f"# machine: {machine()}")
    print(f"# network {args.network} {net_mean}+-{net_std} ms each way, SLA uniform "
          f"[{args.sla_min:g}, {args.sla_max:g}] ms, {args.decisions} timed decisions after "
          f"{args.warmup} warm-up, x{args.repeat}; perf_counter_ns overhead ~{timer_overhead_ns()} ns "
          f"(included below)")
    rows = []
    cells = len(tables) * len(args.policies) * args.repeat
    done = 0
    for table, models in tables:
        budgets = draw_budgets(args.warmup + args.decisions, random.Random(args.seed), net_mean, net_std,
                               args.sla_min, args.sla_max, args.return_leg)
        for name in args.policies:
            p50s, p99s, means = [], [], []
            fallbacks = 0
            for r in range(args.repeat):
                policy = make_policy(name, threshold_ms=args.threshold_ms)
                gc.collect()
                ns, fallbacks = time_decisions(policy, models, budgets, args.warmup, args.seed + r)
                ns.sort()
                p50s.append(percentile(ns, 0.50))
                p99s.append(percentile(ns, 0.99))
                means.append(sum(ns) / len(ns) / 1000.0)
                done += 1
                print(f"\r[{done}/{cells}] {table} {name}      ", end="", file=sys.stderr, flush=True)
            rows.append((table, len(models), name, statistics.median(p50s), statistics.median(p99s),
                         statistics.median(means), 100.0 * fallbacks / args.decisions))
    print(file=sys.stderr)
    print_table(rows, args.markdown)
    print(f"# loadavg after: {machine().split('loadavg=')[1]}")
    for table, k, name, p50, p99, _, _ in rows:
        if name == TARGET["policy"] and k == TARGET["K"]:
            ok = p50 <= TARGET["p50_us"] and p99 <= TARGET["p99_us"]
            print(f"# target {name} K={k}: p50 <= {TARGET['p50_us']:g} us, p99 <= {TARGET['p99_us']:g} us "
                  f"-> {'MET' if ok else 'MISSED'} (p50 {p50:.1f}, p99 {p99:.1f})")
    return 0


def print_table(rows, markdown: bool) -> None:
    header = ("table", "K", "policy", "p50_us", "p99_us", "mean_us", "fallback_pct")
    if markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join(["---", "--:", "---", "--:", "--:", "--:", "--:"]) + "|")
        for t, k, name, p50, p99, mean, fb in rows:
            print(f"| {t} | {k} | {name} | {p50:.1f} | {p99:.1f} | {mean:.1f} | {fb:.1f} |")
        return
    print(f"{'table':<22}{'K':>3}  {'policy':<17}{'p50_us':>8}{'p99_us':>8}{'mean_us':>9}{'fallback%':>11}")
    for t, k, name, p50, p99, mean, fb in rows:
        print(f"{t:<22}{k:>3}  {name:<17}{p50:>8.1f}{p99:>8.1f}{mean:>9.1f}{fb:>11.1f}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except (BenchInputError, ValueError) as e:
        print(f"policy_decision: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
