"""Per-request network legs: how long request i's upload and its reply's return take.

Every network source becomes a `LegModel`. Legs are a function of the request index and of the
time (seconds since the run started) at which the transfer begins, so trace-driven networks vary
along the trace while parametric ones are drawn per request from a seeded generator - the same
seed gives the same legs for every policy compared.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Protocol, Union

import numpy as np

from modipick.loadgen.traces.profiles import REFERENCE_BYTES, NetworkProfile
from modipick.loadgen.traces.requests_csv import RequestTimes
from modipick.loadgen.traces.schedule import DeliverySchedule
from modipick.loadgen.traces.throughput import ThroughputSeries

Transfer = Union[DeliverySchedule, ThroughputSeries]
STATS_STEP_MS = 100.0   # start a transfer every 100 ms of the trace for its statistics
STATS_MAX_STARTS = 20_000


@dataclass(frozen=True, slots=True)
class Sizes:
    request_bytes: int = REFERENCE_BYTES
    response_bytes: int = 1_000
    base_rtt_ms: float = 0.0  # propagation; half of it is added to each leg

    def __post_init__(self) -> None:
        if self.request_bytes < 0 or self.response_bytes < 0:
            raise ValueError("request and response sizes must be >= 0 bytes")
        if not (math.isfinite(self.base_rtt_ms) and self.base_rtt_ms >= 0):
            raise ValueError(f"base RTT must be >= 0 ms, got {self.base_rtt_ms!r}")


class LegModel(Protocol):
    name: str
    sizes: Sizes

    def upload_ms(self, index: int, at_s: float) -> float: ...

    def return_ms(self, index: int, at_s: float) -> float: ...

    def upload_sample(self) -> np.ndarray:
        """A representative sample of upload legs (statistics, rescaling, CV)."""
        ...

    def scaled(self, factor: float) -> "LegModel":
        """The same network with every transfer time multiplied by `factor` (propagation unchanged)."""
        ...

    def arrivals_s(self) -> np.ndarray | None:
        """The trace's own request send times, if it has them."""
        ...

    def link(self) -> tuple[DeliverySchedule, DeliverySchedule] | None:
        """(up, down) delivery schedules for link mode, if the source is a link trace."""
        ...


@dataclass(frozen=True, eq=False)
class TraceLegs:
    """A link trace per direction (Mahimahi schedule or throughput series)."""

    name: str
    up: Transfer
    down: Transfer
    sizes: Sizes = Sizes()
    offset_s: float = 0.0  # where in the trace the run starts

    def _half_rtt(self) -> float:
        return self.sizes.base_rtt_ms / 2

    def upload_ms(self, index: int, at_s: float) -> float:
        return self.up.transfer_ms(self.sizes.request_bytes, (at_s + self.offset_s) * 1000.0) + self._half_rtt()

    def return_ms(self, index: int, at_s: float) -> float:
        return self.down.transfer_ms(self.sizes.response_bytes, (at_s + self.offset_s) * 1000.0) + self._half_rtt()

    def upload_sample(self) -> np.ndarray:
        period_ms = self.up.period_ms if isinstance(self.up, DeliverySchedule) else self.up.period_s * 1000.0
        # every 100 ms like the traces' SOURCE.md statistics; finer on short traces (>= 1000 starts)
        step = max(period_ms / STATS_MAX_STARTS, min(STATS_STEP_MS, period_ms / 1000))
        starts = np.arange(0.0, period_ms, step)
        return self.up.transfer_ms_many(self.sizes.request_bytes, starts) + self._half_rtt()

    def scaled(self, factor: float) -> "TraceLegs":
        return replace(self, name=f"{self.name} x{factor:.3g}", up=self.up.scaled(factor),
                       down=self.down.scaled(factor), offset_s=self.offset_s * factor)

    def arrivals_s(self) -> np.ndarray | None:
        return None

    def link(self) -> tuple[DeliverySchedule, DeliverySchedule]:
        def schedule(t: Transfer) -> DeliverySchedule:
            return t if isinstance(t, DeliverySchedule) else t.to_schedule()
        return schedule(self.up), schedule(self.down)


@dataclass(frozen=True, eq=False)
class RequestLegs:
    """Measured per-request times; request i uses row i (wrapping around)."""

    name: str
    times: RequestTimes
    sizes: Sizes = Sizes()

    def upload_ms(self, index: int, at_s: float) -> float:
        return float(self.times.upload_ms[index % len(self.times.upload_ms)]) + self.sizes.base_rtt_ms / 2

    def return_ms(self, index: int, at_s: float) -> float:
        i = index % len(self.times.upload_ms)
        if self.times.return_ms is not None:
            leg = float(self.times.return_ms[i])
        else:  # the request's own throughput, applied to the reply's size
            leg = float(self.times.upload_ms[i]) * _size_ratio(self.sizes)
        return leg + self.sizes.base_rtt_ms / 2

    def upload_sample(self) -> np.ndarray:
        return self.times.upload_ms + self.sizes.base_rtt_ms / 2

    def scaled(self, factor: float) -> "RequestLegs":
        return replace(self, name=f"{self.name} x{factor:.3g}", times=self.times.scaled(factor))

    def arrivals_s(self) -> np.ndarray | None:
        return self.times.send_times_s

    def link(self) -> None:
        return None


class ParametricLegs:
    """A named or CV-sweep profile; the per-request draw is one network condition applied to both
    legs in proportion to their sizes (so a 330 KB reply takes as long as the upload)."""

    _CHUNK = 4096

    def __init__(self, profile: NetworkProfile, sizes: Sizes = Sizes(), seed: int = 0) -> None:
        self.profile = profile
        self.sizes = sizes
        self.seed = seed
        self.name = profile.name
        self._draws = np.empty(0)

    def _draw(self, index: int) -> float:
        if index >= len(self._draws):
            n = (index // self._CHUNK + 1) * self._CHUNK
            self._draws = self._generate(n)
        return float(self._draws[index])

    def _generate(self, n: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, 0x1E95])
        mean, std = self.profile.mean_ms, self.profile.std_ms
        if std == 0:
            return np.full(n, mean)
        if self.profile.dist == "lognormal":
            sigma2 = math.log1p((std / mean) ** 2)
            return rng.lognormal(math.log(mean) - sigma2 / 2, math.sqrt(sigma2), n)
        return np.maximum(rng.normal(mean, std, n), 0.0)

    def upload_ms(self, index: int, at_s: float) -> float:
        return self._draw(index) * self.sizes.request_bytes / REFERENCE_BYTES + self.sizes.base_rtt_ms / 2

    def return_ms(self, index: int, at_s: float) -> float:
        return self._draw(index) * self.sizes.response_bytes / REFERENCE_BYTES + self.sizes.base_rtt_ms / 2

    def upload_sample(self) -> np.ndarray:
        return self._generate(STATS_MAX_STARTS) * self.sizes.request_bytes / REFERENCE_BYTES \
            + self.sizes.base_rtt_ms / 2

    def scaled(self, factor: float) -> "ParametricLegs":
        return ParametricLegs(self.profile.scaled(factor), self.sizes, self.seed)

    def arrivals_s(self) -> None:
        return None

    def link(self) -> None:
        return None


def _size_ratio(sizes: Sizes) -> float:
    return sizes.response_bytes / sizes.request_bytes if sizes.request_bytes else 0.0


@dataclass(frozen=True, slots=True)
class LegStats:
    name: str
    n: int
    mean_ms: float
    std_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float

    @property
    def cv(self) -> float:
        return self.std_ms / self.mean_ms if self.mean_ms > 0 else 0.0


def upload_stats(model: LegModel) -> LegStats:
    sample = model.upload_sample()
    p50, p95, p99 = np.percentile(sample, [50, 95, 99])
    return LegStats(model.name, len(sample), float(sample.mean()), float(sample.std()), float(p50), float(p95),
                    float(p99))


def rescale_to_median(model: LegModel, target_ms: float) -> LegModel:
    """The same network, stretched in time so its median upload leg is `target_ms`."""
    half_rtt = model.sizes.base_rtt_ms / 2
    transfer_median = float(np.median(model.upload_sample())) - half_rtt
    if target_ms <= half_rtt:
        raise ValueError(f"target median {target_ms:g} ms must exceed half the base RTT ({half_rtt:g} ms)")
    if transfer_median <= 0:
        raise ValueError(f"{model.name}: median upload is 0 ms, cannot rescale it")
    return model.scaled((target_ms - half_rtt) / transfer_median)
