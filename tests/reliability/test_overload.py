"""Overload: a full Executor sheds at once with RESOURCE_EXHAUSTED, nothing is answered past its
deadline, and a loaded Executor steers the Selector toward faster models.

E3 runs one execution at a time with a queue of 4; heavy requests are 1024x1024 noise PNGs,
which the Executor decodes and resizes inside its execution slot (real CPU work)."""

from __future__ import annotations

import struct
import threading
import time
import zlib
from collections import Counter

import grpc
import numpy as np
import pytest

from modipick.core import ModelProfile
from modipick.stores import InMemoryProfileStore
from modipick.v1 import common_pb2, executor_pb2, executor_pb2_grpc, selector_pb2, selector_pb2_grpc
from reliability_support import Load, by_result, request_figures, stamp, wait_until

# The Selector's view of E3's models (E3 reports to no Profiler, so these stay put). With a 500 ms
# SLA the idle choice is cnn-large (a Select's upload is 1 ms: see selector3's frozen clock);
# queueing of W ms shifts every model by W: from W ~ 40 ms cnn-small is chosen, from W ~ 345 ms
# mlp-tiny, beyond ~495 ms nothing fits (run on device).
STATIC = {"mlp-tiny": (84.0, 5.0), "cnn-small": (93.0, 150.0), "cnn-large": (97.0, 460.0)}
STEER_SLA_MS = 500.0


def gray_png(pixels: np.ndarray, level: int = 1) -> bytes:
    raw = b"".join(b"\x00" + row.tobytes() for row in pixels)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    height, width = pixels.shape
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, level)) + chunk(b"IEND", b""))


def noise_png(size: int = 1024, seed: int = 0) -> bytes:
    return gray_png(np.random.default_rng(seed).integers(0, 256, (size, size), dtype=np.uint8))


HEAVY = common_pb2.Input(encoded_image=noise_png())
# ~4 MB of noise: decoding it keeps the one execution slot busy for tens of ms even on a quiet
# machine, so a queue of 4 holds well over the 70 ms the steering test waits for (1024 px: ~6 ms),
# and 24 requests at once overflow it even when a busy machine staggers their arrival
HEAVIER = common_pb2.Input(encoded_image=noise_png(2048))
# 4096 x 4096 stripes in ~70 KB: ~20 ms of decoding in the slot on a quiet machine, uploaded in well
# under 1 ms, so requests sent together arrive together however busy the machine is
SLOW_TO_DECODE = common_pb2.Input(encoded_image=gray_png(np.tile((np.arange(4096) % 256).astype(np.uint8),
                                                                 (4096, 1)), level=9))


@pytest.fixture
def frozen_ns() -> int:
    """selector3's wall clock, frozen: a Select stamped 1 ms before it (and with a deadline beyond
    its SLA) has a 1 ms upload however busy the machine is. The loads' Infers are budgeted from their
    deadlines and anonymous (no clock offset is learned), so the frozen clock does not touch them."""
    return time.time_ns()


@pytest.fixture
def selector3(rig, e3, frozen_ns):
    """An in-process Selector on E3 with fixed profiles (E3 reports to no Profiler)."""
    from modipick.selector.app import SelectorSettings, start_selector

    store = InMemoryProfileStore()
    for name, (accuracy, mean) in STATIC.items():
        store.register(ModelProfile(name=name, declared_accuracy=accuracy, mean_ms=mean, samples=20))
    app = rig.loop.run(start_selector(SelectorSettings(
        executor_target=e3.target, policy="dynamic_greedy", refresh_ms=100.0, return_legs=_mirror()), store=store,
        wall_ns=lambda: frozen_ns))
    yield app
    rig.loop.run(app.stop(0.5))


def _mirror():
    from modipick.selector.returnlegs import ReturnLegSettings

    return ReturnLegSettings(mode="mirror")


def test_a_full_executor_sheds_at_once(e3, figures):
    results: list[tuple[str, float]] = []
    refusals: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(24)

    def call(i: int) -> None:
        with grpc.insecure_channel(e3.target) as ch:
            stub = executor_pb2_grpc.ExecutorServiceStub(ch)
            grpc.channel_ready_future(ch).result(timeout=5)
            start.wait(10)
            began = time.monotonic()
            try:
                stub.Execute(executor_pb2.ExecuteRequest(request_id=f"shed-{i}", model=common_pb2.ModelRef(
                    name="cnn-small"), input=SLOW_TO_DECODE), timeout=10)
                outcome = "OK"
            except grpc.RpcError as exc:
                outcome = exc.code().name
                with lock:
                    refusals.append(exc.details() or "")
            with lock:
                results.append((outcome, (time.monotonic() - began) * 1000.0))

    threads = [threading.Thread(target=call, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    counts = Counter(o for o, _ in results)
    shed_ms = sorted(ms for o, ms in results if o == "RESOURCE_EXHAUSTED")
    served_ms = sorted(ms for o, ms in results if o == "OK")
    figures.record("executor_shedding", concurrent=len(results), slots=1, queue=4, outcomes=dict(counts),
                   shed_p50_ms=round(shed_ms[len(shed_ms) // 2], 1) if shed_ms else None,
                   served_max_ms=round(served_ms[-1], 1) if served_ms else None)
    assert set(counts) <= {"OK", "RESOURCE_EXHAUSTED"}, counts
    # one slot and 4 queued are always served; a request that arrives after one finished finds room
    # (the ~70 KB input keeps the arrivals together: with 4 MB ones a slow machine staggers the
    # uploads and as few as 1 of 24 is shed)
    assert counts["RESOURCE_EXHAUSTED"] >= 12 and counts["OK"] >= 5, counts
    # shed on arrival, against a full queue, not after waiting in it
    assert all("saturated" in detail and "and 4 waiting" in detail for detail in refusals), refusals[:3]
    assert shed_ms[len(shed_ms) // 2] < served_ms[-1], (shed_ms, served_ms)


def test_the_selector_under_overload_sheds_and_never_answers_late(selector3, figures):
    load = Load(selector3.target, sla_ms=300.0, threads=12, make_input=lambda seed: HEAVY).start()
    time.sleep(2.5)
    outcomes = load.stop()
    counts = by_result(outcomes)
    figures.record("selector_overload", threads=12, sla_ms=300.0, **request_figures(outcomes))
    assert set(counts) <= {"served", "run_on_device", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED"}, counts
    assert counts.get("served", 0) > 0 and counts.get("RESOURCE_EXHAUSTED", 0) + counts.get("run_on_device", 0) > 0
    # gRPC's own deadline, plus the client's wakeup after it beyond how late this process ran
    late = [o for o in outcomes if o.elapsed_ms > o.deadline_ms + 50 + load.lag.max_ms]
    assert not late, (load.lag.max_ms, late[:5])


def test_a_loaded_executor_steers_selection_toward_faster_models(selector3, frozen_ns, figures):
    with grpc.insecure_channel(selector3.target) as ch:
        stub = selector_pb2_grpc.SelectorServiceStub(ch)
        grpc.channel_ready_future(ch).result(timeout=5)

        def decide(n: int) -> Counter:
            picks = Counter()
            for i in range(n):
                reply = stub.Select(selector_pb2.SelectRequest(request_id=f"steer-{i}", sla_ms=STEER_SLA_MS,
                                                               client_send_time=stamp(frozen_ns - 1_000_000)),
                                    timeout=2)
                run_on_device = reply.disposition == selector_pb2.DISPOSITION_RUN_ON_DEVICE
                picks["run_on_device" if run_on_device else reply.model.name] += 1
                time.sleep(0.01)
            return picks

        wait_until(lambda: selector3.pool.replicas[0].reported_at > 0, 5, what="first queue report")
        idle = decide(20)
        load = Load(selector3.target, sla_ms=5000.0, threads=4, make_input=lambda seed: HEAVIER).start()
        wait_until(lambda: selector3.pool.expected_queue_ms() > 70.0, 10, what="queueing seen")
        waits = [selector3.pool.expected_queue_ms()]
        loaded = decide(20)
        waits.append(selector3.pool.expected_queue_ms())
        outcomes = load.stop()
        wait_until(lambda: selector3.pool.expected_queue_ms() == 0.0, 10, what="queue drained")
        after = decide(20)
    figures.record("queue_aware_selection", sla_ms=STEER_SLA_MS, idle=dict(idle), loaded=dict(loaded),
                   after=dict(after), expected_queue_ms=[round(w, 1) for w in waits],
                   load_requests=request_figures(outcomes))
    assert idle == Counter({"cnn-large": 20})
    # (the queue the pool expects dips between the load's requests; a decision in a dip may still
    # fit cnn-large)
    assert loaded["cnn-large"] <= 2 and sum(loaded.values()) == 20, (loaded, waits)
    # faster models; on a slow machine the load's queue peaks past what any model can fit within
    # the 500 ms SLA (524 ms expected, seen on a clean 2-vCPU CI run: 11 of 20 on the device), and
    # there running on the device is the right answer, so faster models take a quarter at least
    assert loaded["cnn-small"] + loaded["mlp-tiny"] >= 5, (loaded, waits)
    assert loaded["cnn-small"] + loaded["mlp-tiny"] + loaded["run_on_device"] >= 18, (loaded, waits)
    assert after == Counter({"cnn-large": 20})
    assert by_result(outcomes) == {"served": len(outcomes)}  # the load itself fit the queue: nothing shed


def test_the_selector_sheds_beyond_its_inflight_limit(rig, e3, figures):
    from modipick.selector.app import SelectorSettings, start_selector

    store = InMemoryProfileStore()
    for name, (accuracy, mean) in STATIC.items():
        store.register(ModelProfile(name=name, declared_accuracy=accuracy, mean_ms=mean, samples=20))
    app = rig.loop.run(start_selector(SelectorSettings(executor_target=e3.target, max_inflight=2, refresh_ms=100.0),
                                      store=store))
    try:
        load = Load(app.target, sla_ms=3000.0, threads=6, make_input=lambda seed: HEAVY).start()
        time.sleep(1.5)
        outcomes = load.stop()
    finally:
        rig.loop.run(app.stop(0.5))
    counts = by_result(outcomes)
    refused = [o for o in outcomes if o.result == "RESOURCE_EXHAUSTED"]
    figures.record("selector_inflight_limit", max_inflight=2, threads=6, **request_figures(outcomes),
                   refusal=refused[0].details if refused else "")
    assert set(counts) <= {"served", "RESOURCE_EXHAUSTED"} and counts.get("served") and refused, counts
    # refused at once, not queued behind the two in flight; a busy machine may delay a few refusals
    # (one of ~280 took 112 ms in a full-suite run), none waits for a slot of the 3 s SLA
    refused_ms = sorted(o.elapsed_ms for o in refused)
    assert refused_ms[int(0.9 * (len(refused_ms) - 1))] < 100.0 and refused_ms[-1] < 500.0, refused_ms[-5:]
