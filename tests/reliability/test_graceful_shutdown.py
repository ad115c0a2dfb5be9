"""Graceful shutdown of real processes under load: SIGTERM turns health NOT_SERVING first, calls
in flight finish, new calls are refused (UNAVAILABLE, never accepted), then the process exits 0.
Nothing is accepted and then dropped: every request sent before SIGTERM is answered, and every
observation a Profiler acknowledged is in Redis (and nothing it did not acknowledge).

A call that reaches the port in the instant the listener closes may end CANCELLED instead of
UNAVAILABLE: gRPC's core cancels calls it received but never handed to the service. Such a call
never ran (the Profiler test proves it: stored == acknowledged), so both count as refused.
"""

from __future__ import annotations

import signal
from collections import Counter
import threading
import time

import grpc

from modipick.runtime.auth import bearer
from modipick.v1 import common_pb2, profiler_pb2, profiler_pb2_grpc
from reliability_support import (ADMIN_TOKEN, NOT_SERVING, HealthWatch, Load, ServiceProcess, by_result, channel,
                                 free_port, request_figures, wait_until)

SHUTDOWN_DB = 3


def test_a_selector_drains_its_requests_on_sigterm(rig, tmp_path, figures):
    port = free_port()
    proc = ServiceProcess("selector-term", [
        "selector", "--listen", f"127.0.0.1:{port}", "--executor-target", rig.e1.target, "--profiler-target", "",
        "--drain-delay-s", "0.5", "--grace-s", "5", "--log-json", *rig.redis.flags(0), *rig.pki.server_flags(),
        *rig.pki.downstream_flags()], tmp_path / "selector.log", f"127.0.0.1:{port}", rig.pki).start()
    proc.wait_serving(60)
    watch = HealthWatch(proc.target, rig.pki)
    load = Load(proc.target, rig.pki, sla_ms=3000.0, threads=4).start()
    try:
        time.sleep(1.0)
        rig.e1.pause()  # requests now wait inside the Selector: they are in flight at SIGTERM
        time.sleep(0.3)
        term_at = time.monotonic()
        proc.signal(signal.SIGTERM)
        wait_until(lambda: watch.first(NOT_SERVING), 2, what="NOT_SERVING on the health watch")
        watch.close()  # an open Watch stream would hold the server for its whole grace period
        time.sleep(0.8 - (time.monotonic() - term_at))
        rig.e1.resume()
        code = proc.proc.wait(15)
        exited_at = time.monotonic()
        time.sleep(0.3)  # clients keep sending to a closed port
    finally:
        rig.e1.resume()
        outcomes = load.stop()
        watch.close()
    before = [o for o in outcomes if o.started < term_at]
    in_flight = [o for o in before if o.started + o.elapsed_ms / 1000.0 > term_at]
    after = [o for o in outcomes if o.started >= term_at]
    not_serving_at = watch.first(NOT_SERVING)
    figures.record("shutdown_selector", exit_code=code, drain_delay_s=0.5, grace_s=5.0, **request_figures(outcomes),
                   sent_before_sigterm=len(before), in_flight_at_sigterm=len(in_flight),
                   after_sigterm=by_result(after),
                   not_serving_after_ms=round((not_serving_at - term_at) * 1000, 1) if not_serving_at else None,
                   exit_after_ms=round((exited_at - term_at) * 1000, 1))
    assert code == 0, proc.tail()
    assert not_serving_at is not None and term_at <= not_serving_at < exited_at
    assert in_flight and by_result(before) == {"served": len(before)}  # accepted before: all answered
    assert set(by_result(after)) <= {"served", "UNAVAILABLE", "CANCELLED"}  # later: answered, or refused
    assert "UNAVAILABLE" in by_result(after)


def test_a_profiler_stores_every_observation_it_acknowledged(rig, tmp_path, figures):
    admin = tmp_path / "token"
    admin.write_text(ADMIN_TOKEN)
    port = free_port()
    proc = ServiceProcess("profiler-term", [
        "profiler", "--listen", f"127.0.0.1:{port}", "--executor-target", rig.e1.target, "--no-discovery",
        "--admin-token", f"file:{admin}", "--drain-delay-s", "0.3", "--grace-s", "5", "--log-json",
        *rig.redis.flags(SHUTDOWN_DB), *rig.pki.server_flags(), *rig.pki.downstream_flags()],
        tmp_path / "profiler.log", f"127.0.0.1:{port}", rig.pki).start()
    proc.wait_serving(60)
    ref = common_pb2.ModelRef(name="drained", version=1)
    with channel(proc.target, rig.pki) as ch:
        profiler_pb2_grpc.ProfilerServiceStub(ch).RegisterModel(profiler_pb2.RegisterModelRequest(
            model=ref, declared_accuracy=50.0, skip_warmup=True), timeout=5, metadata=bearer(ADMIN_TOKEN))
    acknowledged, refused, other = [0], [], []
    stop = threading.Event()
    lock = threading.Lock()

    def stream_forever() -> None:
        with channel(proc.target, rig.pki) as ch:
            stub = profiler_pb2_grpc.ProfilerServiceStub(ch)
            while not stop.is_set():
                def batches():  # a stream that lasts ~0.2 s: many are open when SIGTERM comes
                    for _ in range(4):
                        yield profiler_pb2.RecordObservationsRequest(observations=[profiler_pb2.Observation(
                            model=ref, execution_ms=3.0)] * 25)
                        time.sleep(0.05)
                try:
                    reply = stub.RecordObservations(batches(), timeout=10)
                except grpc.RpcError as exc:
                    with lock:
                        refusal = exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
                        (refused if refusal else other).append(exc.code().name)
                    time.sleep(0.05)
                    continue
                with lock:
                    acknowledged[0] += reply.accepted

    threads = [threading.Thread(target=stream_forever) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    proc.signal(signal.SIGTERM)
    code = proc.proc.wait(15)
    time.sleep(0.3)
    stop.set()
    for t in threads:
        t.join(15)
    store = rig.redis.store(SHUTDOWN_DB)
    stored = {p.name: p.samples for p in store.load_all()}.get("drained", 0)
    store.close()
    figures.record("shutdown_profiler", exit_code=code, observations_acknowledged=acknowledged[0],
                   observations_stored=stored, streams_refused=dict(Counter(refused)), other_errors=other)
    assert code == 0, proc.tail()
    assert acknowledged[0] > 0 and stored == acknowledged[0]
    assert not other, other
