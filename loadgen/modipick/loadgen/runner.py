"""The open-loop runner: send request i at its intended time, whatever happened to the others.

Latency is measured from each request's INTENDED send time, so lateness of the generator itself
(lag, the concurrency cap) counts against the request instead of being hidden (no coordinated
omission). The client send time stamped into the request is the intended time too.

Network modes:
  direct    no emulation: legs are 0
  realtime  the client really waits the trace's upload leg before sending and its return leg
            after the reply (the server sees upload = receive - stamped send time)
  link      the target is reached through a shaped link (modipick.loadgen.link); the legs in the
            records are what the trace predicts, the server's view of the upload is measured
"""

from __future__ import annotations

import asyncio
import gc
import time
import uuid
from dataclasses import dataclass
from typing import Callable

import numpy as np

from modipick.loadgen.clock import sleep_until
from modipick.loadgen.datasets import DatasetSource
from modipick.loadgen.population import ClientSchedule
from modipick.loadgen.progress import NoProgress, Progress
from modipick.loadgen.records import RequestRecord
from modipick.loadgen.target import OutgoingRequest, Reply, Target
from modipick.loadgen.traces.legs import LegModel
from modipick.loadgen.uploads import UploadPlan

MODES = ("direct", "realtime", "link")
START_LEAD_S = 0.05  # schedule the first request this far ahead, so setup never makes it late


@dataclass(frozen=True)
class RunSpec:
    label: str
    policy: str                   # "" = the Selector's configured policy
    sla_ms: float
    offsets_s: np.ndarray         # intended send times after the start
    network: LegModel | None      # None = no legs (direct)
    mode: str = "direct"
    concurrency: int = 1024
    deadline: bool = True         # gRPC deadline = what is left of the SLA when the RPC starts
    report_outcomes: bool = False
    drain_s: float = 30.0         # after the last send, wait this long for replies
    network_cv: float | None = None
    client_id: str = "loadgen"
    clients: ClientSchedule | None = None  # a population: each request's client, network and legs
    upload: UploadPlan | None = None       # each request's input size (and so its payload and upload leg)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; known: {', '.join(MODES)}")
        if self.clients is not None and self.mode == "link":
            raise ValueError("a client population needs mode realtime or direct (a link carries one client)")
        if self.mode != "direct" and self.network is None and self.clients is None:
            raise ValueError(f"mode {self.mode} needs a network")
        if self.clients is not None and len(self.clients.owner) < len(self.offsets_s):
            raise ValueError("the client schedule is shorter than the run")
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {self.concurrency}")
        if self.upload is not None and self.mode != "realtime":
            raise ValueError("the upload sizes need mode realtime (the legs of each payload are emulated)")


class _Tally:
    def __init__(self) -> None:
        self.sent = 0
        self.done = 0
        self.met = 0
        self.lags: list[float] = []

    def lag_p99(self) -> float:
        recent = self.lags[-2000:]
        return float(np.percentile(recent, 99)) if recent else 0.0


async def run_open_loop(target: Target, spec: RunSpec, dataset: DatasetSource, *,
                        progress: Progress | None = None,
                        wall_clock: Callable[[], float] = time.time) -> list[RequestRecord]:
    loop = asyncio.get_running_loop()
    progress = progress or NoProgress()
    network = spec.network if spec.mode != "direct" else None
    total = len(spec.offsets_s)
    records: list[RequestRecord | None] = [None] * total
    tally = _Tally()
    gate = asyncio.Semaphore(spec.concurrency)
    background: set[asyncio.Task] = set()
    run_id = uuid.uuid4().hex[:12]
    uploaded = spec.upload.name if spec.upload is not None else ""  # each record says what its client sent

    # A full collection walks every object of the process (grpc, numpy, scikit-learn...) and stalls
    # the loop for 30-110 ms, so requests go out late. Collect now and freeze what exists: during the
    # run the collector only walks what the run itself creates.
    thaw = gc.get_freeze_count() == 0  # leave a caller's own freeze alone
    gc.collect()
    gc.freeze()
    t0 = loop.time() + START_LEAD_S
    wall0 = wall_clock() + START_LEAD_S

    def legs_of(i: int) -> tuple[LegModel | None, int, float, str]:
        """(network, row index, trace time shift, client id) of request i."""
        if spec.clients is None:
            return network, i, 0.0, spec.client_id
        client = spec.clients.client(i)
        row, shift = spec.clients.legs_at(i, 0.0)
        return (client.network if spec.mode != "direct" else None), row, shift, spec.clients.client_id(i)

    async def one(i: int, offset: float) -> None:
        intended = t0 + offset
        started = loop.time()
        lag_ms = (started - intended) * 1000.0
        tally.lags.append(lag_ms)
        net, row, shift, client_id = legs_of(i)
        async with gate:
            if spec.upload is None:
                sample = dataset.sample(i)
            else:
                sample = spec.upload.images.sample(i, spec.upload.chooser.choose(client_id, spec.sla_ms))
                net = spec.upload.network(net, sample.nbytes) if net is not None else None
            up_ms = net.upload_ms(row, offset + shift) if net is not None else 0.0
            if spec.mode == "realtime":
                await sleep_until(loop, intended + up_ms / 1000.0)
            rpc_start = loop.time()
            timeout = None
            if spec.deadline:
                timeout = spec.sla_ms / 1000.0 - (rpc_start - intended)
            request = OutgoingRequest(request_id=f"{run_id}-{i:06d}", input=sample.input, sla_ms=spec.sla_ms,
                                      client_send_time=wall0 + offset, timeout_s=timeout, policy=spec.policy,
                                      client_id=client_id)
            tally.sent += 1
            if timeout is not None and timeout <= 0:
                reply = Reply(status="DEADLINE_EXCEEDED", error="the SLA was spent before the request was sent")
            else:
                reply = await target.send(request)
            rpc_end = loop.time()
            if spec.upload is not None and reply.upload_ms:
                spec.upload.chooser.observe(client_id, sample.nbytes, reply.upload_ms)
            ret_ms = net.return_ms(row, rpc_end - t0 + shift) if net is not None else 0.0
            if spec.mode == "realtime":
                await sleep_until(loop, rpc_end + ret_ms / 1000.0)
            done = loop.time()
        e2e_ms = (done - intended) * 1000.0
        served = reply.ok and reply.disposition == "served"
        met = served and e2e_ms <= spec.sla_ms
        correct = None
        if served and sample.label is not None and reply.predicted is not None and reply.predicted >= 0:
            correct = reply.predicted == sample.label
        records[i] = RequestRecord(
            run=spec.label, policy=spec.policy or "(server)", network=net.name if net else "none",
            sla_ms=spec.sla_ms, index=i, request_id=request.request_id, intended_s=offset, lag_ms=lag_ms,
            upload_ms=up_ms, return_ms=ret_ms,
            upload_actual_ms=(rpc_start - intended) * 1000.0 if spec.mode == "realtime" else None,
            return_actual_ms=(done - rpc_end) * 1000.0 if spec.mode == "realtime" else None,
            status=reply.status, error=reply.error, disposition=reply.disposition, model=reply.model,
            version=reply.version, reason=reply.reason, server_upload_ms=reply.upload_ms,
            budget_ms=reply.budget_ms, selection_ms=reply.selection_ms, queue_ms=reply.queue_ms,
            execution_ms=reply.execution_ms, server_ms=reply.server_ms, rpc_ms=(rpc_end - rpc_start) * 1000.0,
            e2e_ms=e2e_ms, sla_met=met, label=sample.label, predicted=reply.predicted, correct=correct,
            network_cv=spec.network_cv, client_id=client_id, return_leg_source=reply.return_leg_source,
            upload=uploaded)
        tally.done += 1
        tally.met += met
        if spec.report_outcomes and served:
            task = loop.create_task(target.report_outcome(request, reply, e2e_ms, sample.label))
            background.add(task)
            task.add_done_callback(background.discard)

    progress.start(spec.label, total)
    ticker = loop.create_task(_tick(progress, tally))
    inflight: set[asyncio.Task] = set()
    failures: list[BaseException] = []

    def finished(task: asyncio.Task) -> None:
        inflight.discard(task)  # finished tasks are dropped at once: nothing piles up for the GC
        if not task.cancelled() and task.exception() is not None:
            failures.append(task.exception())

    try:
        for i, offset in enumerate(spec.offsets_s.tolist()):
            await sleep_until(loop, t0 + offset)
            task = loop.create_task(one(i, offset))
            inflight.add(task)
            task.add_done_callback(finished)
        if inflight:
            _, pending = await asyncio.wait(set(inflight), timeout=spec.drain_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if background:
            await asyncio.wait(background, timeout=5.0)
    finally:
        ticker.cancel()
        for task in list(inflight):
            task.cancel()
        await asyncio.gather(ticker, *inflight, return_exceptions=True)
        if thaw:
            gc.unfreeze()
        progress.update(tally.sent, tally.done, tally.met, tally.lag_p99())
        progress.finish()
    if failures:
        raise failures[0]  # a bug in the runner, not an RPC failure
    end = loop.time()
    for i, offset in enumerate(spec.offsets_s.tolist()):
        if records[i] is None:  # no reply within the drain time (or never sent): a miss
            net, _, _, client_id = legs_of(i)
            records[i] = RequestRecord(
                run=spec.label, policy=spec.policy or "(server)", network=net.name if net else "none",
                sla_ms=spec.sla_ms, index=i, request_id=f"{run_id}-{i:06d}", intended_s=offset, lag_ms=0.0,
                upload_ms=0.0, return_ms=0.0, status="NO_REPLY", error=f"no reply within {spec.drain_s:g} s",
                e2e_ms=max(0.0, (end - t0 - offset) * 1000.0), network_cv=spec.network_cv, client_id=client_id,
                upload=uploaded)
    return [r for r in records if r is not None]


async def _tick(progress: Progress, tally: _Tally) -> None:
    while True:
        await asyncio.sleep(0.2)
        progress.update(tally.sent, tally.done, tally.met, tally.lag_p99())
