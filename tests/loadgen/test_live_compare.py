"""Live compare: a compare run against the live suite (`modipick up`: Executor with embedded
TensorFlow, Profiler, Selector, each its own process, on a real redis-server) at a tight SLA.

Pool: two imagenet-arch models at 128 px (random weights, real latencies; built once and cached
like the digits pool, ~50 s): mobilenet-025 (declared 49.7 %, ~10-20 ms here) and inception-v3
(77.9 %, ~70 ms). The digits models all run in 2-3 ms, inside the 5-10 ms of noise a busy 2-core
machine adds to a gRPC round trip, so no choice among them moves attainment much; and the gap
between two models must exceed that noise on both sides (a first try with mobilenet-025/-100,
~15 vs ~40 ms under load, left the fast model too little room).

Network: a per-request trace this test writes (an app's measured upload and return legs), in
spells, as real traces come: 5 requests with ~4 ms legs, then 15 with long legs both ways
(symmetric, the paper's setup), and again. The machine's speed decides what "long" and "tight"
are: these models run 2x slower or faster from one hour to the next on a shared 2-core box, so
fixed legs and a fixed SLA would make the outcome depend on the hour (on a quiet machine inception-v3
runs in ~40 ms and static greedy meets bad-spell requests meant to be out of its reach). The test reads
the two models' latencies from the Profiler once they are eligible and sets, with fast and slow
the means of mobilenet-025 and inception-v3,

    T    = (fast + slow) / 2           what a bad spell leaves the server after the round trip
    SLA  = slow + T + 40 ms            good spells leave inception-v3 ~T + 30 ms of slack
    legs = (SLA - T - 5 ms) / 2 each   in a bad spell (5 ms: the Selector's own overhead)

(~10 and ~70 ms give SLA 150 and 52 ms legs). In a bad spell static greedy still sends
inception-v3, under a deadline of about T, and misses; the dynamic policies see the upload and
switch to mobilenet-025, which fits in T with room for a 2-3x slower machine. Good spells are kept
short (a quarter of the requests) and the assertions rest on the bad spells, where the policies
differ.
"""

from __future__ import annotations

import asyncio
import csv
import math
import random
import time
from pathlib import Path

import pytest

from fixtures_suite import with_db
from fixtures_zoo import build_cached, zoo_cache_root
from suite_support import stamp
from modipick.loadgen.cli import main as loadgen_main
from modipick.loadgen.records import read_records
from modipick.loadgen.summary import summarize

pytestmark = [pytest.mark.slow, pytest.mark.tf]

SUITE_DB = 8  # the digits live suite uses 7
POOL_MODELS = ("mobilenet-025", "inception-v3")
POLICIES = ("static_greedy", "dynamic_greedy", "modipick", "risk_aware")
GOOD_SPELL, BAD_SPELL = 5, 15   # requests per spell
GOOD_MS = 4.0
IMAGE_PX = 128


def calibrate(fast_ms: float, slow_ms: float) -> tuple[float, float, float]:
    """(server time a bad spell leaves, SLA, one bad-spell leg) for the models' measured means."""
    left = (fast_ms + slow_ms) / 2
    sla = slow_ms + left + 40.0
    return left, sla, (sla - left - 5.0) / 2


@pytest.fixture(scope="module")
def arch_pool() -> Path:
    return build_cached("imagenet-arch", zoo_cache_root() / "imagenet-arch-mb025-incv3-128",
                        "--models", ",".join(POOL_MODELS), "--input-size", str(IMAGE_PX))


@pytest.fixture(scope="module")
def arch_suite(redis_server, arch_pool, tmp_path_factory):
    """`modipick up`'s Suite on free ports, on the session's redis-server (database SUITE_DB)."""
    import redis

    from modipick.cli.suite import Suite, SuiteSettings
    from modipick.stores import make_store

    url = with_db(redis_server.url, SUITE_DB)
    redis.Redis.from_url(url).flushdb()
    log_path = tmp_path_factory.mktemp("arch-suite") / "suite.log"
    with open(log_path, "wb") as log:
        suite = Suite(SuiteSettings(
            selector_port=0, executor_port=0, profiler_port=0, redis_url=url, start_redis=False,
            model_base=arch_pool, build=False, policy="risk_aware", threshold_ms=5.0,
            warmup_runs=3, probe_runs=10, log_level="warning", child_output=log))
        store = make_store(url)
        try:
            asyncio.run(suite.start())
            _wait_eligible(store, POOL_MODELS, log_path)
            _wait_selector_sees_both(suite.selector_target, store)
            yield suite
        finally:
            asyncio.run(suite.stop())
            store.close()


def _wait_selector_sees_both(target: str, store, timeout_s: float = 30.0) -> None:
    """Until the Selector's own copy of the profiles (refreshed every 200 ms) holds both models:
    static greedy then sends a generous SLA to inception-v3, and one between the two means to
    mobilenet-025 (without it, to the fastest it sees)."""
    import grpc

    from modipick.v1 import selector_pb2, selector_pb2_grpc

    profiles = {p.name: p for p in store.load_all()}
    between = (profiles["mobilenet-025"].mean_ms + profiles["inception-v3"].mean_ms) / 2
    expected = {10_000.0: "inception-v3", between: "mobilenet-025"}
    deadline = time.monotonic() + timeout_s
    with grpc.insecure_channel(target) as channel:
        stub = selector_pb2_grpc.SelectorServiceStub(channel)
        while time.monotonic() < deadline:
            try:
                chosen = {sla: stub.Select(selector_pb2.SelectRequest(
                    sla_ms=sla, policy="static_greedy", client_send_time=stamp(time.time_ns())),
                    timeout=5).model.name for sla in expected}
            except grpc.RpcError as exc:
                chosen = {"error": f"{exc.code().name}: {exc.details()}"}
            if chosen == expected:
                return
            time.sleep(0.1)
    raise AssertionError(f"the Selector did not see both models within {timeout_s:g} s: "
                         f"static greedy chose {chosen}, expected {expected}")


def _wait_eligible(store, names, log_path: Path, timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        profiles = {p.name: p for p in store.load_all()}
        if all(n in profiles and profiles[n].state == "eligible" for n in names):
            return
        time.sleep(0.25)
    raise AssertionError(f"pool not eligible after {timeout_s:g} s: {store.load_all()}\n"
                         f"suite log tail:\n{log_path.read_text(errors='replace')[-3000:]}")


def write_spells_trace(path: Path, bad_ms: float, rows: int = 40, seed: int = 7) -> Path:
    """upload_ms,return_ms per request: GOOD_SPELL good then BAD_SPELL bad requests, lognormal jitter."""
    rng = random.Random(seed)
    with open(path, "w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["upload_ms", "return_ms"])
        for i in range(rows):
            bad = i % (GOOD_SPELL + BAD_SPELL) >= GOOD_SPELL
            median, sigma = (bad_ms, 0.04) if bad else (GOOD_MS, 0.3)
            out.writerow([f"{median * math.exp(rng.gauss(0, sigma)):.3f}",
                          f"{median * math.exp(rng.gauss(0, sigma)):.3f}"])
    return path


def test_dynamic_policies_beat_static_greedy_on_attainment_live(arch_suite, tmp_path, capsys):
    from modipick.stores import make_store

    store = make_store(arch_suite.redis_url)
    try:
        profiles = {p.name: p for p in store.load_all()}
    finally:
        store.close()
    fast, slow = profiles["mobilenet-025"].mean_ms, profiles["inception-v3"].mean_ms
    assert slow > 2 * fast, profiles  # the premise: a spread the machine's noise cannot hide
    left, sla, bad_ms = calibrate(fast, slow)
    setting = f"models {fast:.1f} / {slow:.1f} ms -> SLA {sla:.0f} ms, bad legs {bad_ms:.1f} ms, T {left:.0f} ms"
    trace = write_spells_trace(tmp_path / "spells.csv", bad_ms)
    report = tmp_path / "report"
    code = loadgen_main([
        "run", "--target", arch_suite.selector_target, "--profiler", arch_suite.profiler_target,
        "--network", str(trace), "--mode", "realtime", "--sla", f"{sla:.0f}",
        "--compare", ",".join(POLICIES), "--dataset", "image", "--image-size", str(IMAGE_PX),
        "--arrivals", "constant", "--rate", "10", "--count", "80", "--seed", "3",
        "--progress", "none", "--report", str(report)])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert f"network spells.csv, SLA {sla:.0f} ms" in printed.out

    records = read_records(report / "records.csv")
    by_policy = {p: [r for r in records if r.policy == p] for p in POLICIES}
    assert all(len(rs) == 80 for rs in by_policy.values())
    # the same legs for every policy (request i replays row i of the trace)
    legs = [(r.index, r.upload_ms, r.return_ms) for r in by_policy["static_greedy"]]
    assert all([(r.index, r.upload_ms, r.return_ms) for r in rs] == legs for rs in by_policy.values())
    summaries = {s.policy: s for s in summarize(records)}
    table = setting + "\n" + "\n".join(
        f"{p}: attainment {summaries[p].attainment_pct:.0f}%, mix {summaries[p].model_mix}" for p in POLICIES)

    def bad_spell(r) -> bool:
        return r.upload_ms > (GOOD_MS + bad_ms) / 2

    def bad_attainment(rs) -> float:
        bad = [r for r in rs if bad_spell(r)]
        return 100.0 * sum(r.sla_met for r in bad) / len(bad)

    static = by_policy["static_greedy"]
    # static greedy decides against the SLA alone: the most accurate model, whatever the network
    # (the Selector adds the Executor's expected queueing to every mean, so the queue a bad spell
    # leaves behind can still push inception-v3 past the SLA now and then: up to ~1 in 10 served
    # can go to mobilenet-025; the dynamic policies send it about 1 in 4)
    served = [r.model for r in static if r.served]
    assert served and served.count("inception-v3") >= 0.8 * len(served), table
    # ... and misses (nearly) every request of a bad spell, where its deadline leaves it ~T < slow
    bad_total = sum(1 for r in static if bad_spell(r))
    assert bad_total == 60
    assert bad_attainment(static) <= 15.0, table
    for policy in ("dynamic_greedy", "modipick", "risk_aware"):
        rs = by_policy[policy]
        assert bad_attainment(rs) >= bad_attainment(static) + 40.0, table
        assert summaries[policy].attainment_pct >= summaries["static_greedy"].attainment_pct + 15.0, table
        # where the network is bad they switch to the fast model and meet the SLA with it
        fast_in_bad = [r for r in rs if bad_spell(r) and r.model == "mobilenet-025" and r.served]
        assert len(fast_in_bad) >= bad_total // 2, table
        assert sum(r.sla_met for r in fast_in_bad) >= 0.6 * len(fast_in_bad), table
    # the report carries the declared accuracies the Profiler knows (Table 2: inception-v3 77.9 %,
    # mobilenet-025 49.7 %), and the dynamic policies traded some of it for the SLA
    with open(report / "summary.csv", newline="") as handle:
        declared = {row["policy"]: float(row["declared_accuracy_pct"]) for row in csv.DictReader(handle)}
    assert 75.0 <= declared["static_greedy"] <= 77.9, declared
    # (an answer from the device counts 0 here, and a busy machine sends a few there: the floor is
    # mobilenet-025's 49.7 % less such a share)
    assert all(40.0 < declared[p] < declared["static_greedy"] for p in POLICIES[1:]), declared
    assert "## Policies side by side" in (report / "report.md").read_text()


def test_outcomes_are_reported_for_every_served_reply_by_default(trivial, capsys):
    code = loadgen_main(["run", "--target", trivial.address, "--mode", "direct", "--sla", "500",
                         "--arrivals", "constant", "--rate", "100", "--count", "12", "--progress", "none"])
    assert code == 0, capsys.readouterr().err
    assert trivial.selector.outcomes == 12
    assert loadgen_main(["run", "--target", trivial.address, "--mode", "direct", "--sla", "500",
                         "--arrivals", "constant", "--rate", "100", "--count", "5", "--progress", "none",
                         "--no-report-outcomes"]) == 0
    assert trivial.selector.outcomes == 12


def test_a_run_that_served_nothing_scores_zero_effective_declared_accuracy():
    from modipick.loadgen.records import RequestRecord
    from modipick.loadgen.summary import summarize_run, summary_table

    def record(i: int, **fields) -> RequestRecord:
        return RequestRecord(run="r", policy="static_greedy", network="wifi", sla_ms=100.0, index=i,
                             request_id=f"id{i}", intended_s=0.0, lag_ms=0.0, upload_ms=60.0, return_ms=1.0,
                             **fields)

    missed = [record(0, disposition="run_on_device", model="m1"), record(1, status="DEADLINE_EXCEEDED")]
    s = summarize_run(missed, {"m1": 70.0})
    assert s.attainment_pct == 0.0 and s.effective_declared_pct == 0.0 and s.declared_accuracy_pct is None
    assert summarize_run(missed).effective_declared_pct is None  # no declared accuracies known
    assert "eff decl %" in summary_table([s])
