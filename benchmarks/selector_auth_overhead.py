"""What client authentication adds to a Selector call: two in-process Selectors on one memory store,
one with authentication off, one with it on (an HS256 JWT, the same token on every call as a client
reuses it; signed tickets), called alternately by one paced grpc.aio client, so both see the same
machine at the same moment.

    python -m benchmarks.selector_auth_overhead [--calls 3000] [--gap-ms 4]

Each call is a Select (the decision, no model run): the whole Selector path but the Executor hop, so
the difference of the two p50s is the interceptor, the token check (a cache hit after the first
call) and binding the client id. Signing an outcome ticket (Infer only) is timed apart, in-process.
The full suite's figure (through an Executor, under load): selector_overhead --auth.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import timeit

TARGET_GROWTH_MS = 0.2
SECRET = "benchmark-jwt-secret-0123456789abcdef"


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(calls: int, gap_s: float) -> tuple[list[float], list[float]]:
    import grpc
    import jwt

    from benchmarks._suite_procs import FIXED_PROFILES
    from modipick.core import ModelProfile
    from modipick.runtime.identity import JwtSettings
    from modipick.runtime.identity_interceptors import ClientAuthSettings
    from modipick.selector.app import SelectorSettings, start_selector
    from modipick.selector.tickets import TicketKeys
    from modipick.stores import InMemoryProfileStore
    from modipick.v1 import selector_pb2, selector_pb2_grpc

    store = InMemoryProfileStore()
    for name, accuracy, mean, std in FIXED_PROFILES:
        store.register(ModelProfile.from_stats(name, accuracy, mean, std, samples=100))
    common = dict(executor_target="127.0.0.1:9", profiler_target="", refresh_ms=60_000.0)
    plain = await start_selector(SelectorSettings(**common), store=store)
    secured = await start_selector(SelectorSettings(
        **common, client_auth=ClientAuthSettings(mode="required", jwt=JwtSettings(hs256_secrets=(SECRET,))),
        ticket_keys=TicketKeys("k1", b"benchmark-ticket-key-0123")), store=store)
    token = jwt.encode({"sub": "bench/phone-1", "exp": int(time.time()) + 3600}, SECRET, algorithm="HS256")
    off: list[float] = []
    on: list[float] = []
    try:
        async with grpc.aio.insecure_channel(plain.target) as a, grpc.aio.insecure_channel(secured.target) as b:
            paths = ((selector_pb2_grpc.SelectorServiceStub(a), (), off),
                     (selector_pb2_grpc.SelectorServiceStub(b), (("authorization", f"Bearer {token}"),), on))
            for i in range(2 * (calls + 200)):
                stub, metadata, into = paths[i % 2]
                request = selector_pb2.SelectRequest(request_id=f"r-{i}", sla_ms=1000.0)
                request.client_send_time.FromNanoseconds(time.time_ns())
                began = time.perf_counter()
                await stub.Select(request, timeout=5.0, metadata=metadata)
                if i >= 400:
                    into.append((time.perf_counter() - began) * 1000.0)
                await asyncio.sleep(gap_s)
    finally:
        await plain.stop(0)
        await secured.stop(0)
    return off, on


def signing_us() -> tuple[float, float]:
    from modipick.selector.outcomes import Served
    from modipick.selector.tickets import TicketKeys, TicketSigner, outcome_ticket

    served = Served("bench/phone-1", 3.0, 12.0, "client", 1.0, 4.0, None, "deadline", 0.0)
    signer = TicketSigner(TicketKeys("k1", b"benchmark-ticket-key-0123"))
    n = 20_000
    plain = min(timeit.repeat(lambda: outcome_ticket("r-1", served), number=n, repeat=3)) / n * 1e6
    signed = min(timeit.repeat(lambda: signer.ticket("r-1", served), number=n, repeat=3)) / n * 1e6
    return plain, signed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000, help="measured calls per Selector")
    parser.add_argument("--gap-ms", type=float, default=4.0, help="pause between calls")
    args = parser.parse_args(argv)
    from modipick.runtime.logging import configure_logging

    configure_logging(level="warning")
    off, on = asyncio.run(measure(args.calls, args.gap_ms / 1000.0))
    print(f"{'Select round trip':>22} {'p50':>7} {'p90':>7} {'p99':>7}  (ms, {len(off)} calls each, alternating)")
    for label, values in (("auth off", off), ("auth on (JWT)", on)):
        print(f"{label:>22} {quantile(values, .5):7.3f} {quantile(values, .9):7.3f} {quantile(values, .99):7.3f}")
    growth = quantile(on, .5) - quantile(off, .5)
    print(f"{'growth':>22} {growth:+7.3f} {quantile(on, .9) - quantile(off, .9):+7.3f} "
          f"{quantile(on, .99) - quantile(off, .99):+7.3f}; means {statistics.mean(off):.3f} / "
          f"{statistics.mean(on):.3f} ms")
    plain_us, signed_us = signing_us()
    print(f"outcome ticket: {plain_us:.1f} us unsigned, {signed_us:.1f} us signed (+{signed_us - plain_us:.1f} us)")
    total = growth + (signed_us - plain_us) / 1000.0
    print(f"target: p50 growth (with signing) <= {TARGET_GROWTH_MS:g} ms: {total:+.3f} ms "
          f"{'PASS' if total <= TARGET_GROWTH_MS else 'MISS'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
