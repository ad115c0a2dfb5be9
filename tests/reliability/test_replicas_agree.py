"""Replicas agree: Selector processes on one Redis see a profile change within their refresh bound,
and eight writer processes streaming through two Profiler processes lose no observation.
Every process talks mutual TLS; Redis is reached with an ACL user, a password file and TLS, all
through the services' flags."""

from __future__ import annotations

import multiprocessing
import statistics
import time
from collections import Counter

import grpc

from modipick.core import ModelProfile
from modipick.runtime.auth import bearer
from modipick.v1 import common_pb2, profiler_pb2, profiler_pb2_grpc, selector_pb2, selector_pb2_grpc
from reliability_support import ADMIN_TOKEN, ServiceProcess, channel, free_port, stamp
from reliability_writers import MODELS, write_process

REPLICAS = 3
ROUNDS = 4  # profile changes, each watched on every replica
REFRESH_MS = 200.0
AGREE_DB = 1
WRITERS_DB = 2
# dynamic_greedy at this SLA picks "mid" (20 ms) while "slow" is 80 ms, "slow" once it is 15 ms: each
# with ~20 ms of the send-stamp upload to spare (counted twice: SLA - 2 x upload), which a Select's
# stall on two busy cores stays well under (the replicas are processes: their clocks are real)
SLA_MS = 60.0
SLACK_MS = 300.0  # scheduling on two busy cores, on top of the refresh period


def start_selectors(rig, tmp_path, count: int) -> list[ServiceProcess]:
    procs = []
    for i in range(count):
        port = free_port()
        procs.append(ServiceProcess(f"selector-{i}", [
            "selector", "--listen", f"127.0.0.1:{port}", "--executor-target", rig.e1.target,
            "--profiler-target", "", "--policy", "dynamic_greedy", "--profile-refresh-ms", str(REFRESH_MS),
            "--seed", "7", "--return-leg", "mirror", "--log-json", *rig.redis.flags(AGREE_DB),
            *rig.pki.server_flags(), *rig.pki.downstream_flags()],
            tmp_path / f"selector-{i}.log", f"127.0.0.1:{port}", rig.pki).start())
    for proc in procs:
        proc.wait_serving(60)
    return procs


def choice(stub, request_id: str, sla_ms: float = SLA_MS, policy: str = "") -> str:
    reply = stub.Select(selector_pb2.SelectRequest(request_id=request_id, sla_ms=sla_ms, client_send_time=stamp(),
                                                   policy=policy), timeout=2)
    return reply.model.name


def test_selector_replicas_see_a_profile_change_within_the_refresh_bound(rig, tmp_path, figures):
    store = rig.redis.store(AGREE_DB)
    store.register(ModelProfile(name="fast", declared_accuracy=80.0, mean_ms=2.0, samples=10))
    store.register(ModelProfile(name="mid", declared_accuracy=90.0, mean_ms=20.0, samples=10))
    store.register(ModelProfile(name="slow", declared_accuracy=97.0, mean_ms=80.0, samples=10))
    procs = start_selectors(rig, tmp_path, REPLICAS)
    channels = [channel(p.target, rig.pki) for p in procs]
    stubs = [selector_pb2_grpc.SelectorServiceStub(ch) for ch in channels]
    lags: list[float] = []
    try:
        for ch in channels:  # connect first: a TLS handshake after the send stamp would eat the budget
            grpc.channel_ready_future(ch).result(timeout=10)
        assert [choice(s, "warm") for s in stubs] == ["mid"] * REPLICAS
        for round_ in range(ROUNDS):
            slow_ms, expect = (15.0, "slow") if round_ % 2 == 0 else (80.0, "mid")
            changed = time.monotonic()
            assert store.observe_many([("slow", 1, slow_ms)], alpha=1.0) == 1  # alpha 1: mean := slow_ms
            seen: dict[int, float] = {}
            while len(seen) < REPLICAS and time.monotonic() - changed < 5.0:
                for i, stub in enumerate(stubs):
                    if i not in seen and choice(stub, f"r{round_}-{len(lags)}") == expect:
                        seen[i] = (time.monotonic() - changed) * 1000.0
                time.sleep(0.005)
            assert len(seen) == REPLICAS, f"round {round_}: replicas {set(range(REPLICAS)) - set(seen)} never saw it"
            lags += seen.values()
        # with equal profiles and seeds, replicas draw alike for the same request id (random policy)
        ids = [f"same-{i}" for i in range(40)]
        picks = [[choice(s, rid, sla_ms=1000.0, policy="pure_random") for rid in ids] for s in stubs]
        assert picks[0] == picks[1] == picks[2]
        assert len(set(picks[0])) == 3  # and they do draw different models
    finally:
        for ch in channels:
            ch.close()
        codes = [p.stop() for p in procs]
        store.close()
    assert codes == [0] * REPLICAS, [p.tail() for p in procs]
    assert max(lags) <= REFRESH_MS + SLACK_MS, lags
    figures.record("replicas_agree", selectors=REPLICAS, refresh_ms=REFRESH_MS, changes=ROUNDS,
                   observations=len(lags), max_lag_ms=round(max(lags), 1),
                   median_lag_ms=round(statistics.median(lags), 1), same_draws=f"{len(ids)}/{len(ids)}")


def test_eight_writer_processes_through_two_profilers_lose_nothing(rig, tmp_path, figures):
    writers, streams, batches, batch_size = 8, 6, 5, 40
    admin = tmp_path / "admin-token"
    admin.write_text(ADMIN_TOKEN)
    profilers = []
    for i in range(2):
        port = free_port()
        profilers.append(ServiceProcess(f"profiler-{i}", [
            "profiler", "--listen", f"127.0.0.1:{port}", "--executor-target", rig.e1.target, "--no-discovery",
            "--admin-token", f"file:{admin}", "--log-json", *rig.redis.flags(WRITERS_DB),
            *rig.pki.server_flags(), *rig.pki.downstream_flags()],
            tmp_path / f"profiler-{i}.log", f"127.0.0.1:{port}", rig.pki).start())
    for proc in profilers:
        proc.wait_serving(60)
    try:
        with channel(profilers[0].target, rig.pki) as ch:
            stub = profiler_pb2_grpc.ProfilerServiceStub(ch)
            for name, version in MODELS:
                stub.RegisterModel(profiler_pb2.RegisterModelRequest(
                    model=common_pb2.ModelRef(name=name, version=version), declared_accuracy=70.0, skip_warmup=True),
                    timeout=5, metadata=bearer(ADMIN_TOKEN))
        ctx = multiprocessing.get_context("spawn")
        start, results = ctx.Barrier(writers), ctx.Queue()
        tls = (rig.pki.ca, rig.pki.client_cert, rig.pki.client_key)
        procs = [ctx.Process(target=write_process, args=(profilers[w % 2].target, tls, w, streams, batches,
                                                          batch_size, start, results)) for w in range(writers)]
        for p in procs:
            p.start()
        reports = [results.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(30)
            assert p.exitcode == 0
        with channel(profilers[1].target, rig.pki) as ch:
            listed = profiler_pb2_grpc.ProfilerServiceStub(ch).ListProfiles(profiler_pb2.ListProfilesRequest(),
                                                                             timeout=5).profiles
    finally:
        codes = [p.stop() for p in profilers]
    sent = sum((Counter(report) for _, _, report in reports), Counter())
    accepted = sum(a for _, a, _ in reports)
    stored = {f"{p.model.name}:{p.model.version}": p.samples for p in listed}
    total = writers * streams * batches * batch_size
    figures.record("writers", processes=writers, profilers=len(profilers), observations_sent=total,
                   acknowledged=accepted, stored=sum(stored.values()), lost=total - sum(stored.values()))
    assert codes == [0, 0], [p.tail() for p in profilers]
    assert accepted == sum(sent.values()) == total
    assert stored == dict(sent)
    assert ADMIN_TOKEN not in "".join(p.tail(10**6) for p in profilers)  # the secret is never logged
