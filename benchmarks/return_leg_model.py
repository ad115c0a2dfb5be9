"""What the return-leg model costs per reported leg (`observe`) and per decision (`estimate`): a
network class's shared model (per-source cap, trimmed ranges, sources counted) against a client's
own model, measured in the same run, the two alternating round by round.

    python -m benchmarks.return_leg_model [--legs 20000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time

from modipick.core.returnleg import ReturnLegModel


def _legs(n: int, seed: int) -> list[tuple[float, float, str]]:
    rng = random.Random(seed)
    return [(rng.uniform(20.0, 80.0), rng.lognormvariate(3.0, 0.5), f"c{rng.randrange(200)}") for _ in range(n)]


def _time(make, legs, rounds: int) -> tuple[float, float]:
    """Best per-call time (us) of observe over `legs` and of estimate over 5,000 uploads."""
    best_observe = best_estimate = float("inf")
    for _ in range(rounds):
        model = make()
        started = time.perf_counter()
        for upload, leg, source in legs:
            model.observe(upload, leg, source=source)
        best_observe = min(best_observe, (time.perf_counter() - started) / len(legs))
        uploads = [u for u, _, _ in legs[:5_000]]
        started = time.perf_counter()
        for upload in uploads:
            model.estimate(upload)
        best_estimate = min(best_estimate, (time.perf_counter() - started) / len(uploads))
    return best_observe * 1e6, best_estimate * 1e6


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.return_leg_model", description=__doc__)
    parser.add_argument("--legs", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    if args.legs < 5_000 or args.rounds < 1:
        parser.error("--legs must be >= 5000 and --rounds >= 1")
    legs = _legs(args.legs, 1)
    print(f"load average {os.getloadavg()[0]:.2f}; {args.legs} legs from 200 clients, best of {args.rounds}")
    own = (float("inf"), float("inf"))
    shared = (float("inf"), float("inf"))
    for _ in range(args.rounds):  # alternate, so a change of load hits both alike
        own = tuple(map(min, own, _time(ReturnLegModel, legs, 1)))
        shared = tuple(map(min, shared, _time(lambda: ReturnLegModel(source_cap=12, min_sources=3), legs, 1)))
    print(f"{'model':44s} {'observe us':>11s} {'ratio':>6s} {'estimate us':>12s} {'ratio':>6s}")
    for name, (observe, estimate) in (("client's own model (baseline)", own),
                                      ("class model (cap 12 of 256, 3 clients)", shared)):
        print(f"{name:44s} {observe:11.2f} {observe / own[0]:6.2f} {estimate:12.2f} {estimate / own[1]:6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
