"""A grid of open-loop runs: every network x every SLA x every policy, the same arrivals, legs and
inputs for every policy of a (network, SLA) cell, so policies are compared on identical load."""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field
from typing import Awaitable, Callable

import numpy as np
import structlog

from modipick.core.profiles import Candidate
from modipick.loadgen import arrivals
from modipick.loadgen.datasets import DatasetSource
from modipick.loadgen.errors import LoadgenInputError
from modipick.loadgen.grpc_target import GrpcSelectorTarget
from modipick.loadgen.link import LinkEmulator
from modipick.loadgen.population import Population
from modipick.loadgen.progress import NoProgress, Progress
from modipick.loadgen.records import RequestRecord
from modipick.loadgen.runner import RunSpec, run_open_loop
from modipick.loadgen.target import Target
from modipick.loadgen.traces.legs import LegModel, upload_stats
from modipick.loadgen.uploads import UploadPlan

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Load:
    arrivals: str = "poisson"    # poisson | constant | trace
    rate: float = 50.0           # requests per second (poisson, constant)
    count: int | None = 500
    duration_s: float | None = None
    seed: int = 0

    def offsets(self, network: LegModel | None) -> np.ndarray:
        if self.arrivals == "poisson":
            return arrivals.poisson(self.rate, count=self.count, duration_s=self.duration_s, seed=self.seed)
        if self.arrivals == "constant":
            return arrivals.constant(self.rate, count=self.count, duration_s=self.duration_s)
        if self.arrivals == "trace":
            times = network.arrivals_s() if network is not None else None
            if times is None:
                name = network.name if network is not None else "direct mode"
                raise LoadgenInputError(name, "--arrivals trace needs a per-request CSV with a send_time column")
            return arrivals.from_trace(times, count=self.count, duration_s=self.duration_s)
        raise ValueError(f"unknown arrivals {self.arrivals!r}; known: {', '.join(arrivals.ARRIVALS)}")


@dataclass
class Experiment:
    address: str
    networks: list[LegModel | None]       # None: direct (no network)
    slas_ms: list[float]
    policies: list[str]                   # "" = the Selector's configured policy
    load: Load
    dataset: DatasetSource
    mode: str = "direct"
    concurrency: int = 1024
    deadline: bool = True
    report_outcomes: bool = True           # ReportOutcome (e2e, label) for every served reply
    drain_s: float = 30.0
    client_id: str | None = None          # None: a fresh id (and network class) per run
    target_factory: Callable[[str], Target] | None = None
    clients: int = 0                      # > 0: a population of this many clients over the networks
    zipf_s: float = 1.0                   # their activity: the k-th most active sends ~ 1 / k**s
    population_tag: str | None = None     # None: fresh ids per run; "" or a tag: the same every run
    rng: np.random.Generator | None = None  # draws the population and its schedules [from the seed]
    upload_plans: dict[str, UploadPlan] = field(default_factory=dict)  # run label -> its plan, after the run
    uploads: list[str] = field(default_factory=list)  # "adaptive" | "fixed:PX" per run; [] = the dataset's input
    upload_plan: Callable[[str], Awaitable[UploadPlan]] | None = None  # a fresh plan for one run


def _label(policy: str, sla: float, network: LegModel | None) -> str:
    return f"{policy or 'server'} sla={sla:g} net={network.name if network else 'none'}"


def fresh_client_id() -> str:
    """A client id of its own network class ("CLASS/ID"): a Selector that learns return legs per
    client and class (risk_aware) starts this run from its prior, whatever ran before."""
    return f"loadgen-{uuid.uuid4().hex[:10]}/client"


async def _connect(factory: Callable[[str], Target], address: str) -> Target:
    target = factory(address)
    ready = getattr(target, "wait_ready", None)
    if ready is not None:
        await ready()
    return target


def population_runs(exp: Experiment) -> list[RunSpec]:
    """Population mode: one run per SLA x policy, every network a class of the same population; each
    policy of an SLA gets the same arrivals and request -> client schedule, under fresh ids."""
    if exp.mode == "link":
        raise LoadgenInputError("--clients", "a client population needs --mode realtime or direct (a shaped "
                                             "link carries one client)")
    if exp.load.arrivals == "trace":
        raise LoadgenInputError("--clients", "a client population sends at --arrivals poisson or constant")
    if exp.uploads:
        raise LoadgenInputError("--uploads", "upload sizes are emulated for one client (no --clients)")
    rng = exp.rng if exp.rng is not None else np.random.default_rng([exp.load.seed, 0xC11E])
    try:
        population = Population.build(exp.clients, list(exp.networks), zipf_s=exp.zipf_s, rng=rng)
    except ValueError as exc:
        raise LoadgenInputError("--clients", str(exc)) from None
    specs = []
    for sla in exp.slas_ms:
        offsets = exp.load.offsets(None)
        schedule = population.schedule(len(offsets), rng)
        for policy in exp.policies:
            tag = exp.population_tag if exp.population_tag is not None else uuid.uuid4().hex[:8]
            specs.append(RunSpec(
                label=f"{policy or 'server'} sla={sla:g} net=population({len(population)} clients)",
                policy=policy, sla_ms=sla, offsets_s=offsets, network=None, mode=exp.mode,
                concurrency=exp.concurrency, deadline=exp.deadline, report_outcomes=exp.report_outcomes,
                drain_s=exp.drain_s, clients=schedule.with_tag(tag)))
    return specs


async def run_experiment(exp: Experiment, progress: Progress | None = None) -> list[RequestRecord]:
    progress = progress or NoProgress()
    factory = exp.target_factory or GrpcSelectorTarget
    records: list[RequestRecord] = []
    if exp.clients:
        specs = population_runs(exp)  # before connecting: bad input fails fast
        target = await _connect(factory, exp.address)
        try:
            for spec in specs:
                records += await run_open_loop(target, spec, exp.dataset, progress=progress)
        finally:
            await target.close()
        return records
    shared = None if exp.mode == "link" else await _connect(factory, exp.address)
    try:
        for network in exp.networks:
            cv = upload_stats(network).cv if network is not None else None
            for sla in exp.slas_ms:
                offsets = exp.load.offsets(network)
                for policy, upload in [(p, u) for p in exp.policies for u in exp.uploads or [""]]:
                    plan = await exp.upload_plan(upload) if upload and exp.upload_plan is not None else None
                    label = _label(policy, sla, network) + (f" upload={upload}" if upload else "")
                    spec = RunSpec(label=label, policy=policy, sla_ms=sla, offsets_s=offsets,
                                   network=network, mode=exp.mode, concurrency=exp.concurrency,
                                   deadline=exp.deadline, report_outcomes=exp.report_outcomes,
                                   drain_s=exp.drain_s, network_cv=cv,
                                   client_id=exp.client_id or fresh_client_id(), upload=plan)
                    if plan is not None:
                        exp.upload_plans[label] = plan
                    if shared is not None:
                        records += await run_open_loop(shared, spec, exp.dataset, progress=progress)
                    else:
                        records += await _run_through_link(exp, factory, spec, network, progress)
    finally:
        if shared is not None:
            await shared.close()
    return records


async def _run_through_link(exp: Experiment, factory: Callable[[str], Target], spec: RunSpec,
                            network: LegModel | None, progress: Progress) -> list[RequestRecord]:
    schedules = network.link() if network is not None else None
    if schedules is None:
        name = network.name if network is not None else "none"
        raise LoadgenInputError(name, "link mode needs a link trace (Mahimahi .up/.down or a throughput series)")
    host, _, port = exp.address.rpartition(":")
    # A fresh link per run: empty queues and the trace restarted, so every policy crosses the same link.
    link = LinkEmulator(*schedules, (host or "127.0.0.1", int(port)),
                        one_way_delay_ms=network.sizes.base_rtt_ms / 2,
                        offset_ms=getattr(network, "offset_s", 0.0) * 1000.0)
    local_port = await link.start()
    target = await _connect(factory, f"127.0.0.1:{local_port}")
    try:
        return await run_open_loop(target, spec, exp.dataset, progress=progress)
    finally:
        await target.close()
        await link.close()


async def _list_profiles(profiler_address: str, timeout_s: float) -> list:
    """ProfilerService.ListProfiles' profiles; ConnectionError naming the Profiler when it fails."""
    import grpc

    from modipick.v1 import profiler_pb2, profiler_pb2_grpc

    async with grpc.aio.insecure_channel(profiler_address) as channel:
        try:
            reply = await profiler_pb2_grpc.ProfilerServiceStub(channel).ListProfiles(
                profiler_pb2.ListProfilesRequest(), timeout=timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise ConnectionError(f"profiler {profiler_address}: {exc.code().name}: {exc.details()}") from None
    return list(reply.profiles)


async def fetch_declared(profiler_address: str, timeout_s: float = 5.0) -> dict[str, float]:
    """model name -> declared accuracy, from ProfilerService.ListProfiles."""
    return {p.model.name: p.declared_accuracy for p in await _list_profiles(profiler_address, timeout_s)}


async def fetch_profiles(profiler_address: str, timeout_s: float = 5.0) -> list[Candidate]:
    """Every profiled model as the Selector sees it (latency, declared accuracy), from ListProfiles."""
    return [Candidate(p.model.name, p.model.version, p.declared_accuracy, p.mean_ms, p.std_ms)
            for p in await _list_profiles(profiler_address, timeout_s)
            if p.mean_ms > 0]  # a model never timed has no latency to budget


def read_manifest(path: str | os.PathLike[str]) -> dict[str, float]:
    """model name -> declared accuracy, from a zoo pool manifest.json."""
    source = os.fspath(path)
    try:
        with open(source, encoding="utf-8") as handle:
            data = json.load(handle)
    except OSError as exc:
        raise LoadgenInputError(source, exc.strerror or str(exc)) from None
    except json.JSONDecodeError as exc:
        raise LoadgenInputError(source, f"not JSON: {exc.msg}", exc.lineno) from None
    try:
        return {m["name"]: float(m["declared_accuracy"]) for m in data["models"]}
    except (KeyError, TypeError, ValueError):
        raise LoadgenInputError(source, "expected {\"models\": [{\"name\", \"declared_accuracy\"}, ...]}") from None
