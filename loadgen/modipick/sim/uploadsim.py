"""Choosing the upload, simulated on real bandwidth traces (`modipick sim uploads`).

Per trace set: requests every `interval_ms` along each trace (random start, same for every
policy); the upload time of every payload of the ladder at that instant (the trace's
serialization time plus a base latency), the reply leg = the base latency, and every model's
execution time drawn N(mean, std) clipped at 0. Every policy sees the same draws:

  fixed_<px>   always that JPEG size; the Selector's policy picks among the models it feeds
  paper_330KB  the paper's 330 KB original (every model can run on it)
  best_fixed   the fixed JPEG size that did best at this SLA, in hindsight
  adaptive     the SDK's per-request choice (modipick.core.uploads) from its measured uploads: the
               last 4 (each older one weighing half as much) mixed with the last 48 alike
  oracle       hindsight over (size, model): the most accurate model any size could have met the SLA with

Effective accuracy counts a request the server did not answer in time at the on-device model's
accuracy when T_D <= SLA (the SDK starts it at the latest at SLA - T_D and returns it then);
`effective_server_pct` keeps the server-only figure (a miss scores 0).
"""

from __future__ import annotations

import glob
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from modipick.core import Budget, Candidate, make_policy
from modipick.core.policies import runs_on_device
from modipick.core.uploads import DEFAULT_DECAY, DEFAULT_HISTORY, DEFAULT_LONG_WEIGHT, BandwidthEstimate, \
    DeviceFallback, UploadMenu, UploadVariant, ValueMemo, choose_upload, models_for_size
from modipick.sim.errors import SimInputError
from modipick.sim.models import data_file, number, read_rows
from modipick.sim.payloads import ORIGINAL, Payload
from modipick.sim.traces import transfer_times_many

SIZED_COLUMNS = ("model", "input_size", "top1_accuracy_pct", "mean_ms", "std_ms")
TRACE_STEP_MS = 100.0
# Trace sets under a traces folder, by name: (glob relative to the folder, what it is)
KNOWN_SETS = {
    "lte": ("lte_mahimahi_short/*.up", "Mahimahi Verizon + T-Mobile LTE uplink"),
    "lte_driving": ("lte_mahimahi_att_driving/*.up", "Mahimahi AT&T LTE uplink while driving"),
    "3g": ("hsdpa_3g_norway/norway_*", "3G/HSDPA Norway commutes (Riiser et al.)"),
    "wifi": ("wifi_cellular_campus_sbu/*_wifi.csv", "SBU campus WiFi walks"),
}


@dataclass(frozen=True, slots=True)
class SizedModel:
    candidate: Candidate
    input_size: int


def load_sized_models(value: str) -> tuple[SizedModel, ...]:
    path = data_file("sized_models.csv") if value == "sized" else Path(value)
    if value != "sized" and not path.is_file():
        raise SimInputError(f"--models {value!r}: no such file (packaged: sized)")
    out = []
    for line, row in read_rows(path, SIZED_COLUMNS):
        size = number(path, line, row, "input_size")
        if not size.is_integer() or size < 1:
            raise SimInputError(f"{path}: line {line}: input_size must be a whole number of px >= 1")
        accuracy = number(path, line, row, "top1_accuracy_pct", upper=100)
        out.append(SizedModel(Candidate(row["model"].strip(), 1, accuracy,
                                        number(path, line, row, "mean_ms"), number(path, line, row, "std_ms")),
                              int(size)))
    if not out:
        raise SimInputError(f"{path}: no model rows")
    return tuple(out)


def build_menu(models: Sequence[SizedModel], ladder: Sequence[Payload], default_size: int) -> UploadMenu:
    pairs = [(m.candidate, m.input_size) for m in models]
    variants = []
    for p in ladder:
        feeds = models_for_size(pairs, p.input_size)
        if feeds:
            variants.append(UploadVariant(p.input_size, p.bytes, feeds))
    return UploadMenu(tuple(variants), default_size)


@dataclass(frozen=True)
class TraceSet:
    name: str
    files: tuple[Path, ...]


def trace_sets(specs: Sequence[str], traces_dirs: Sequence[Path], *, skip_missing: bool = False) -> list[TraceSet]:
    """NAME=GLOB, or a known NAME (lte, lte_driving, 3g, wifi) looked up in the first of `traces_dirs`
    that holds it (the shipped traces hold lte and 3g). `skip_missing`: leave out known sets no folder
    holds (the default set list) instead of refusing them."""
    sets = []
    for spec in specs:
        name, eq, pattern = spec.partition("=")
        if not eq:
            if name not in KNOWN_SETS:
                raise SimInputError(f"--traces {spec!r}: expected NAME=GLOB or one of {', '.join(KNOWN_SETS)}")
            found = [str(d / KNOWN_SETS[name][0]) for d in traces_dirs if glob.glob(str(d / KNOWN_SETS[name][0]))]
            if not found:
                if skip_missing:
                    continue
                raise SimInputError(f"--traces {spec!r}: no folder of the search path holds it "
                                    f"({', '.join(map(str, traces_dirs)) or 'none'}); give --traces-dir")
            pattern = found[0]
        files = tuple(Path(f) for f in sorted(glob.glob(pattern)) if not f.endswith(".md"))
        if not files:
            raise SimInputError(f"--traces {spec!r}: no file matches {pattern!r}")
        sets.append(TraceSet(name, files))
    return sets


@dataclass(frozen=True)
class UploadConfig:
    slas: tuple[float, ...]
    requests: int = 2_000          # per trace set
    seed: int = 1
    interval_ms: float = 500.0     # between one client's requests
    base_ms: float = 20.0          # size-independent one-way latency; also the reply leg
    policy: str = "risk_aware"
    device: DeviceFallback = DeviceFallback(49.8, 150.0)
    window: int = 4                # measured uploads the bandwidth estimate remembers
    default_size: int = ORIGINAL
    decay: float = DEFAULT_DECAY   # weight of an older upload relative to the next newer one
    history: int = DEFAULT_HISTORY          # uploads the long view of the link keeps
    long_weight: float = DEFAULT_LONG_WEIGHT  # its share of the weight

    def estimate(self) -> BandwidthEstimate:
        """A client's bandwidth estimate before its first upload."""
        return BandwidthEstimate(window=self.window, base_ms=self.base_ms, decay=self.decay, history=self.history,
                                 long_weight=self.long_weight)


@dataclass
class Draws:
    upload_ms: np.ndarray   # (N, S) per request and ladder entry
    exec_ms: np.ndarray     # (N, M) per request and model
    client: np.ndarray      # (N,) which trace file (one client per file, requests in order)


def make_draws(ts: TraceSet, ladder: Sequence[Payload], models: Sequence[SizedModel],
               cfg: UploadConfig) -> Draws:
    rng = np.random.default_rng(cfg.seed)
    every = max(1, int(round(cfg.interval_ms / TRACE_STEP_MS)))
    per_file = max(2, math.ceil(cfg.requests / len(ts.files)))
    ups, clients = [], []
    for k, f in enumerate(ts.files):
        times = np.stack(transfer_times_many(f, [p.bytes for p in ladder], TRACE_STEP_MS), axis=1)
        idx = (int(rng.integers(len(times))) + every * np.arange(per_file)) % len(times)
        ups.append(times[idx] + cfg.base_ms)
        clients.append(np.full(per_file, k))
    upload = np.concatenate(ups)
    mean = np.array([m.candidate.mean_ms for m in models])
    std = np.array([m.candidate.std_ms for m in models])
    exec_ms = np.maximum(rng.normal(mean, std, (len(upload), len(models))), 0.0)
    return Draws(upload, exec_ms, np.concatenate(clients))


@dataclass
class Outcome:
    """Per request: the server answered in time (accuracy of its model) or not; the size sent."""

    served_acc: np.ndarray  # accuracy when the server met the SLA, else nan
    size: np.ndarray        # input size sent
    payload: np.ndarray     # bytes sent


@dataclass(frozen=True)
class UploadRow:
    trace_set: str
    sla_ms: float
    policy: str
    requests: int
    attainment_pct: float          # the server answered within the SLA
    effective_pct: float           # ... with the device's answer counted
    effective_server_pct: float    # ... a miss scores 0
    answered_pct: float            # some answer (server or device) within the SLA
    mean_payload_kb: float
    note: str = ""


def _fixed_outcomes(draws: Draws, menu: UploadMenu, ladder: Sequence[Payload], models: Sequence[SizedModel],
                    cfg: UploadConfig, sla: float) -> dict[int, np.ndarray]:
    """Per ladder size: the server's answer accuracy per request (nan: none within the SLA)."""
    policy = make_policy(cfg.policy)
    col = {m.candidate.name: j for j, m in enumerate(models)}
    rng = random.Random(cfg.seed)
    out = {}
    for s, p in enumerate(ladder):
        try:
            variant = menu.variant(p.input_size)
        except KeyError:
            continue
        acc = np.full(len(draws.upload_ms), np.nan)
        for r, u in enumerate(draws.upload_ms[:, s]):
            if u >= sla:
                continue
            budget = Budget(sla, float(u), return_estimate_ms=cfg.base_ms)
            d = policy.choose(variant.models, budget, rng)
            if runs_on_device(d, budget):
                continue
            if u + draws.exec_ms[r, col[d.model.name]] + cfg.base_ms <= sla:
                acc[r] = d.model.accuracy
        out[p.input_size] = acc
    return out


def _adaptive_sizes(draws: Draws, menu: UploadMenu, ladder: Sequence[Payload], cfg: UploadConfig,
                    sla: float) -> np.ndarray:
    """The size the SDK sends per request, learning each client's bandwidth from its own uploads."""
    policy = make_policy(cfg.policy)
    column = {p.input_size: s for s, p in enumerate(ladder)}
    sizes = np.empty(len(draws.upload_ms), dtype=int)
    estimate = cfg.estimate()
    memo = ValueMemo()
    last_client = -1
    for r in range(len(draws.upload_ms)):
        if draws.client[r] != last_client:
            estimate = cfg.estimate()
            last_client = draws.client[r]
        v = choose_upload(menu, estimate, sla, policy, return_ms=cfg.base_ms, device=cfg.device,
                          memo=memo).variant
        sizes[r] = v.input_size
        estimate = estimate.observe(v.payload_bytes, float(draws.upload_ms[r, column[v.input_size]]))
    return sizes


def _oracle(draws: Draws, menu: UploadMenu, ladder: Sequence[Payload], models: Sequence[SizedModel],
            cfg: UploadConfig, sla: float) -> tuple[np.ndarray, np.ndarray]:
    col = {m.candidate.name: j for j, m in enumerate(models)}
    best = np.full(len(draws.upload_ms), np.nan)
    best_size = np.full(len(draws.upload_ms), ladder[0].input_size)
    for s, p in enumerate(ladder):
        try:
            variant = menu.variant(p.input_size)
        except KeyError:
            continue
        js = [col[m.name] for m in variant.models]
        accs = np.array([m.accuracy for m in variant.models])
        ok = draws.upload_ms[:, s, None] + draws.exec_ms[:, js] + cfg.base_ms <= sla
        acc = np.where(ok, accs[None, :], -1.0).max(axis=1)
        better = acc > np.nan_to_num(best, nan=-1.0)
        best = np.where(better, acc, best)
        best_size = np.where(better, p.input_size, best_size)
    return best, best_size


def _row(ts: str, sla: float, name: str, acc: np.ndarray, payload: np.ndarray, device_value: float,
         note: str = "") -> UploadRow:
    met = ~np.isnan(acc)
    served = np.where(met, acc, 0.0)
    return UploadRow(ts, sla, name, len(acc), 100.0 * met.mean(),
                     float(np.where(met, acc, device_value).mean()), float(served.mean()),
                     100.0 * float((met | (device_value > 0)).mean()), float(payload.mean()) / 1000.0, note)


def simulate(ts: TraceSet, ladder: Sequence[Payload], models: Sequence[SizedModel],
             cfg: UploadConfig) -> list[UploadRow]:
    menu = build_menu(models, ladder, cfg.default_size)
    draws = make_draws(ts, ladder, models, cfg)
    n = len(draws.upload_ms)
    bytes_of = {p.input_size: p.bytes for p in ladder}
    rows: list[UploadRow] = []
    for sla in cfg.slas:
        dv = cfg.device.value(sla)
        fixed = _fixed_outcomes(draws, menu, ladder, models, cfg, sla)
        fixed_rows = {s: _row(ts.name, sla, "paper_330KB" if s == ORIGINAL else f"fixed_{s}", acc,
                              np.full(n, bytes_of[s]), dv) for s, acc in fixed.items()}
        rows.extend(fixed_rows.values())
        jpeg = [r for s, r in fixed_rows.items() if s != ORIGINAL]
        best = max(jpeg, key=lambda r: (r.effective_pct, -r.mean_payload_kb))
        best_server = max(jpeg, key=lambda r: (r.effective_server_pct, -r.mean_payload_kb))
        rows.append(UploadRow(ts.name, sla, "best_fixed", n, best.attainment_pct, best.effective_pct,
                              best_server.effective_server_pct, best.answered_pct, best.mean_payload_kb,
                              f"{best.policy.removeprefix('fixed_')} px"))
        sizes = _adaptive_sizes(draws, menu, ladder, cfg, sla)
        acc = np.full(n, np.nan)
        for s, a in fixed.items():
            acc = np.where(sizes == s, a, acc)
        rows.append(_row(ts.name, sla, "adaptive", acc, np.vectorize(bytes_of.get)(sizes), dv))
        oracle, osize = _oracle(draws, menu, ladder, models, cfg, sla)
        rows.append(_row(ts.name, sla, "oracle", oracle, np.vectorize(bytes_of.get)(osize), dv))
    return rows
