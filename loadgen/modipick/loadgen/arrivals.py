"""Open-loop arrival schedules: intended send times (seconds after the run starts).

Bounded by a count and/or a duration, whichever comes first. The schedule is fixed before the run
starts, so a slow server never delays later sends (no coordinated omission).
"""

from __future__ import annotations

import math

import numpy as np

ARRIVALS = ("poisson", "constant", "trace")


def _bounds(count: int | None, duration_s: float | None) -> None:
    if count is None and duration_s is None:
        raise ValueError("bound the run with a request count, a duration, or both")
    if count is not None and count <= 0:
        raise ValueError(f"count must be > 0, got {count}")
    if duration_s is not None and not (math.isfinite(duration_s) and duration_s > 0):
        raise ValueError(f"duration must be > 0 s, got {duration_s!r}")


def poisson(rate: float, *, count: int | None = None, duration_s: float | None = None, seed: int = 0) -> np.ndarray:
    _bounds(count, duration_s)
    if not (math.isfinite(rate) and rate > 0):
        raise ValueError(f"rate must be > 0 requests/s, got {rate!r}")
    rng = np.random.default_rng([seed, 0xA441])
    n = count if count is not None else int(rate * duration_s * 1.2 + 10 * math.sqrt(rate * duration_s) + 10)
    times = np.cumsum(rng.exponential(1.0 / rate, n))
    times -= times[0]  # the first request goes at once
    while duration_s is not None and count is None and times[-1] < duration_s:
        more = times[-1] + np.cumsum(rng.exponential(1.0 / rate, n))
        times = np.concatenate((times, more))
    return _cut(times, count, duration_s)


def constant(rate: float, *, count: int | None = None, duration_s: float | None = None) -> np.ndarray:
    _bounds(count, duration_s)
    if not (math.isfinite(rate) and rate > 0):
        raise ValueError(f"rate must be > 0 requests/s, got {rate!r}")
    n = count if count is not None else int(math.ceil(rate * duration_s)) + 1
    return _cut(np.arange(n) / rate, count, duration_s)


def from_trace(send_times_s: np.ndarray, *, count: int | None = None, duration_s: float | None = None) -> np.ndarray:
    """The trace's own send times (from its first), repeated back to back if more are needed."""
    _bounds(count, duration_s)
    times = np.asarray(send_times_s, dtype=np.float64) - float(send_times_s[0])
    if len(times) == 0:
        raise ValueError("the trace has no send times")
    span = float(times[-1]) + (float(np.median(np.diff(times))) if len(times) > 1 else 1.0)
    repeats = max(math.ceil(count / len(times)) if count is not None else 1,
                  math.ceil(duration_s / span) if duration_s is not None and count is None else 1)
    return _cut(np.concatenate([times + k * span for k in range(repeats)]), count, duration_s)


def _cut(times: np.ndarray, count: int | None, duration_s: float | None) -> np.ndarray:
    if duration_s is not None:
        times = times[times < duration_s]
    if count is not None:
        times = times[:count]
    return times
