"""Throughput series: "time, rate" samples, the rate piecewise-constant between them.

Covers the Pensieve "cooked" files (`time_s<TAB>Mbps`, a sample holds from its time to the next
one) and the SBU campus CSV (`t,BytesPerSecond`, sample t is the rate over [t-1, t)). `anchor`
says which: "start" (rate holds from the sample's time) or "end" (rate held until it).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modipick.loadgen.errors import LoadgenInputError
from modipick.loadgen.traces.schedule import PACKET_BYTES, DeliverySchedule
from modipick.loadgen.traces.textio import parse_float, read_lines, split_fields

# unit name -> bytes per second per unit
RATE_UNITS: dict[str, float] = {
    "bps": 1 / 8, "kbps": 1e3 / 8, "mbps": 1e6 / 8, "gbps": 1e9 / 8,
    "Bps": 1.0, "KBps": 1e3, "MBps": 1e6,
}
_HEADER_UNITS = {"bytespersecond": "Bps", "bytes_per_second": "Bps", "bytes/s": "Bps", "bps": "bps",
                 "mbps": "mbps", "kbps": "kbps", "throughput_mbps": "mbps", "bandwidth_mbps": "mbps"}


@dataclass(frozen=True, eq=False)
class ThroughputSeries:
    starts_s: np.ndarray    # segment start times, first = 0
    rates_Bps: np.ndarray   # bytes per second over each segment
    period_s: float
    source: str = "throughput"

    def __post_init__(self) -> None:
        durations = np.diff(np.append(self.starts_s, self.period_s))
        if np.any(durations <= 0):
            raise ValueError(f"{self.source}: segment start times must increase within the period")
        object.__setattr__(self, "_cum", np.concatenate(([0.0], np.cumsum(self.rates_Bps * durations))))

    @property
    def total_bytes(self) -> float:
        return float(self._cum[-1])

    @property
    def mean_rate_bps(self) -> float:
        return self.total_bytes * 8 / self.period_s

    def _bytes_at(self, t_s: np.ndarray) -> np.ndarray:
        cycles = np.floor(t_s / self.period_s)
        within = t_s - cycles * self.period_s
        i = np.clip(np.searchsorted(self.starts_s, within, side="right") - 1, 0, len(self.starts_s) - 1)
        return cycles * self.total_bytes + self._cum[i] + self.rates_Bps[i] * (within - self.starts_s[i])

    def _time_of_bytes(self, b: np.ndarray) -> np.ndarray:
        """Earliest time at which the cumulative delivered bytes reach b (b > 0)."""
        cycles = np.ceil(b / self.total_bytes) - 1
        rest = b - cycles * self.total_bytes  # in (0, total]
        i = np.searchsorted(self._cum, rest, side="left")  # first boundary with cum >= rest, i >= 1
        seg = i - 1
        rate = self.rates_Bps[seg]
        safe = np.where(rate > 0, rate, 1.0)
        within = np.where(self._cum[i] == rest, np.append(self.starts_s, self.period_s)[i],
                          self.starts_s[seg] + (rest - self._cum[seg]) / safe)
        return cycles * self.period_s + within

    def transfer_ms_many(self, nbytes: int, starts_ms: np.ndarray) -> np.ndarray:
        starts_s = np.asarray(starts_ms, dtype=np.float64) / 1000.0
        if nbytes <= 0:
            return np.zeros_like(starts_s)
        done = self._time_of_bytes(self._bytes_at(starts_s) + nbytes)
        return np.maximum(done - starts_s, 0.0) * 1000.0

    def transfer_ms(self, nbytes: int, start_ms: float) -> float:
        return float(self.transfer_ms_many(nbytes, np.array([start_ms]))[0])

    def scaled(self, factor: float) -> "ThroughputSeries":
        if not (math.isfinite(factor) and factor > 0):
            raise ValueError(f"scale factor must be > 0, got {factor!r}")
        return ThroughputSeries(self.starts_s * factor, self.rates_Bps / factor, self.period_s * factor,
                                f"{self.source} x{factor:.3g}")

    def to_schedule(self, packet_bytes: int = PACKET_BYTES) -> DeliverySchedule:
        """Delivery opportunities at the instants the delivered bytes cross each packet boundary."""
        packets = int(self.total_bytes // packet_bytes)
        if packets == 0:
            raise ValueError(f"{self.source}: carries less than one packet per period")
        marks = np.arange(1, packets + 1, dtype=np.float64) * packet_bytes
        return DeliverySchedule(self._time_of_bytes(marks) * 1000.0, self.period_s * 1000.0, self.source,
                                packet_bytes)


def read_throughput(path: str | os.PathLike[str], *, unit: str = "auto", anchor: str = "auto") -> ThroughputSeries:
    source = os.fspath(path)
    header_unit: str | None = None
    times: list[float] = []
    rates: list[float] = []
    separators: set[str] = set()
    last_line = 0
    for number, text in read_lines(source):
        fields = split_fields(text)
        if len(fields) < 2:
            raise LoadgenInputError(source, f"expected 'time,rate', got {text!r}", number)
        if not times and header_unit is None and not _is_number(fields[0]):
            header_unit = _HEADER_UNITS.get(fields[1].strip().lower().replace(" ", ""), "")
            continue
        separators.add("," if "," in text else "tab")
        t = parse_float(source, number, fields[0], "time")
        r = parse_float(source, number, fields[1], "rate")
        if r < 0:
            raise LoadgenInputError(source, f"rate must be >= 0, got {fields[1]!r}", number)
        if times and t <= times[-1]:
            raise LoadgenInputError(source, f"time must increase ({t:g} after {times[-1]:g})", number)
        times.append(t)
        rates.append(r)
        last_line = number
    if len(times) < 2:
        raise LoadgenInputError(source, "a throughput series needs at least two samples")
    unit = _choose_unit(unit, header_unit, separators, rates)
    if anchor == "auto":
        anchor = "end" if separators == {","} else "start"
    t = np.asarray(times)
    r = np.asarray(rates) * RATE_UNITS[unit]
    step = float(np.median(np.diff(t)))
    if anchor == "start":
        starts = t - t[0]
        period = float(t[-1] - t[0] + step)
    elif anchor == "end":
        starts = np.concatenate(([0.0], t[:-1] - (t[0] - step)))
        period = float(t[-1] - (t[0] - step))
    else:
        raise LoadgenInputError(source, f"unknown anchor {anchor!r} (use start or end)")
    series = ThroughputSeries(starts, r, period, Path(source).name)
    if series.total_bytes < PACKET_BYTES:
        raise LoadgenInputError(source, "the link delivers (almost) nothing: every rate is 0", last_line)
    return series


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _choose_unit(unit: str, header_unit: str | None, separators: set[str], rates: list[float]) -> str:
    if unit != "auto":
        if unit not in RATE_UNITS:
            raise ValueError(f"unknown rate unit {unit!r}; known: {', '.join(RATE_UNITS)}")
        return unit
    if header_unit:
        return header_unit
    if separators == {"tab"}:
        return "mbps"  # Pensieve cooked format
    # Headerless CSV: a median above 10,000 is implausible in Mbps (10 Gbit/s), so bytes per second.
    return "Bps" if float(np.median(rates)) > 1e4 else "mbps"
