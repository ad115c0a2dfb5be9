"""Real bandwidth traces -> per-request transfer times of one payload (for heavy-tailed inputs).

Formats, detected from the first data line:
  mahimahi   one integer per line: a ms timestamp of one 1500-byte delivery opportunity
  sbu        "seconds,bytes_per_second" (Stony Brook multipath WiFi/cellular traces)
  pensieve   "seconds<whitespace>Mbps" (Pensieve "cooked" 3G/HSDPA traces)
Method (as in the traces' SOURCE.md files): a request starts every `step_ms` over the trace,
which wraps around; its transfer time is the time until `payload_bytes` have been delivered.
Pure serialization time: no RTT or TCP slow start added.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from modipick.sim.errors import SimInputError

MAHIMAHI_PACKET_BYTES = 1500


def transfer_times(path: Path, payload_bytes: int, step_ms: float = 100.0) -> np.ndarray:
    return transfer_times_many(path, (payload_bytes,), step_ms)[0]


def transfer_times_many(path: Path, payloads: Sequence[int], step_ms: float = 100.0) -> list[np.ndarray]:
    """transfer_times of several payloads from one read of the trace (same start instants)."""
    try:
        lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as e:
        raise SimInputError(f"{path}: cannot read trace ({e})") from None
    rows = [(i, ln) for i, ln in enumerate(lines, start=1) if ln and not ln.startswith("#")]
    if len(rows) < 2:
        raise SimInputError(f"{path}: a bandwidth trace needs at least 2 lines")
    fields = [(i, re.split(r"[,\s]+", ln)) for i, ln in rows]
    values = np.array([[_num(path, i, f) for f in fs[:2]] for i, fs in fields]
                      if len(fields[0][1]) >= 2 else [[_num(path, i, fs[0])] for i, fs in fields])
    if values.shape[1] == 1:
        return [_mahimahi(path, values[:, 0], p, step_ms) for p in payloads]
    seconds, rate = values[:, 0], values[:, 1]
    bytes_per_s = rate if "," in rows[0][1] else rate * 1e6 / 8.0  # sbu: B/s; pensieve: Mbps
    return [_piecewise(path, seconds * 1000.0, bytes_per_s / 1000.0, p, step_ms) for p in payloads]


def _num(path: Path, line: int, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise SimInputError(f"{path}: line {line}: {text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise SimInputError(f"{path}: line {line}: {text!r} must be a finite number >= 0")
    return value


def _piecewise(path: Path, t_ms: np.ndarray, bytes_per_ms: np.ndarray, payload: int,
               step_ms: float) -> np.ndarray:
    """Rate bytes_per_ms[i] holds on [t_ms[i], t_ms[i+1]); the last sample lasts the median step."""
    if np.any(np.diff(t_ms) <= 0):
        raise SimInputError(f"{path}: timestamps must increase")
    dt = np.diff(t_ms)
    dt = np.append(dt, np.median(dt))
    period = float(t_ms[-1] + dt[-1] - t_ms[0])
    per_period = float(np.sum(bytes_per_ms * dt))
    if per_period <= 0:
        raise SimInputError(f"{path}: the trace never delivers any data")
    laps = int(math.ceil(payload / per_period)) + 2
    starts_of_segments = (t_ms - t_ms[0])[None, :] + period * np.arange(laps)[:, None]
    seg_t = np.append(starts_of_segments.ravel(), period * laps)
    seg_bytes = np.concatenate([[0.0], np.cumsum(np.tile(bytes_per_ms * dt, laps))])
    starts = np.arange(0.0, period, step_ms)
    delivered_at_start = np.interp(starts, seg_t, seg_bytes)
    # first time the cumulative byte count reaches start + payload (plateaus: take their end)
    target = delivered_at_start + payload
    idx = np.searchsorted(seg_bytes, target, side="left")
    lo_t, hi_t = seg_t[idx - 1], seg_t[idx]
    lo_b, hi_b = seg_bytes[idx - 1], seg_bytes[idx]
    done = lo_t + (hi_t - lo_t) * (target - lo_b) / (hi_b - lo_b)
    return done - starts


def _mahimahi(path: Path, stamps_ms: np.ndarray, payload: int, step_ms: float) -> np.ndarray:
    stamps = np.sort(stamps_ms)
    period = float(max(stamps[-1], 1.0))
    packets = int(math.ceil(payload / MAHIMAHI_PACKET_BYTES))
    laps = int(math.ceil(packets / len(stamps))) + 2
    tiled = (stamps[None, :] + period * np.arange(laps)[:, None]).ravel()
    starts = np.arange(0.0, period, step_ms)
    first = np.searchsorted(tiled, starts, side="left")
    return tiled[first + packets - 1] - starts
