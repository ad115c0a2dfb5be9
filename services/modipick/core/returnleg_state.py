"""A client's return-leg model as a compact, versioned byte string (<= 1 KB), so it can live in a
shared store, one entry per client, instead of in every Selector replica's memory.

What is kept of a `ReturnLegModel` (modipick.core.returnleg):
  * the exponentially weighted moments and the fitted coefficients, exactly (float64);
  * the last reported leg, the sample count, the observed ranges of legs and uploads and the
    winsorizing bands, exactly (so estimates stay clamped to what was observed);
  * the window of residuals, legs and uploads as a sketch of `SKETCH_POINTS` order statistics
    each (float32), the minimum and the maximum included; a window of at most that many points is
    kept whole.

`from_state` rebuilds a model whose window holds the sketch's points repeated to the window's
length, interleaved so that new legs replace the old distribution evenly across its quantiles (the
ring's oldest slots hold one copy of each point). Its estimates equal the original's up to the
sketch's resolution; encoding a decoded model gives the same bytes again.

Only a client's own model is encoded: a model shared by sources (a network class, with
`source_cap`) keeps per-source counts that the state does not carry, and `to_state` refuses it.
The model's parameters (alpha, window, min_samples, ...) are configuration, not state: the caller
builds the empty model (`new_model`) the state is loaded into.

Layout (little-endian): version u8, flags u8, generation u32, samples u32, count u16 (points in the
window), sketch u16 (points per sketch), 22 float64 (moments, coefficients, last leg, ranges,
bands), then 3 x sketch float32 (residuals, legs, uploads, each sorted).

A stored value may carry, after the state, legs reported since it was written (`encode_leg`:
upload, return and basis as float64, NaN for no basis; PENDING_LEG_BYTES each): a report appends
its leg instead of rewriting the state, and `from_state` learns them into the model it returns.
`fold` writes them into a new state.
"""

from __future__ import annotations

import functools
import math
import operator
import struct
from array import array
from typing import Callable

from modipick.core.returnleg import ReturnLegModel

VERSION = 1
SKETCH_POINTS = 32
MAX_STATE_BYTES = 1024
_HEADER = struct.Struct("<BBIIHH")
_FIXED = struct.Struct("<22d")
GENERATION_OFFSET = 2      # the generation's bytes: [2, 6) (a store compares them to swap)
GENERATION_BYTES = 4
POINTS_OFFSET = _HEADER.size - 2  # the sketch's point count, u16 (a store reads it to find the legs)
_LEG = struct.Struct("<3d")
PENDING_LEG_BYTES = _LEG.size
_F_LEG_RANGE, _F_UP_RANGE, _F_BAND, _F_UP_BAND, _F_SLOPE_TRUSTED, _F_LAST = 1, 2, 4, 8, 16, 32


class StateError(ValueError):
    """Bytes that are not a return-leg state this code can read; the message says why."""


@functools.lru_cache(maxsize=64)
def _sketch_positions(n: int, points: int) -> tuple[int, ...]:
    return tuple(round(k * (n - 1) / (points - 1)) for k in range(points))


def _sketch(values: list[float], points: int) -> list[float]:
    """Sorted `values` reduced to `points` order statistics, the first and the last included."""
    n = len(values)
    if n <= points:
        return values
    return [values[i] for i in _sketch_positions(n, points)]


@functools.lru_cache(maxsize=64)
def _spread_order(k: int, n: int) -> tuple[int, ...]:
    """Sorted position j of a window of n holds the sketch point nearest to it (so sketching the
    window again gives the same points); the slots are ordered copy by copy (the ring's oldest
    slots hold each point once: new legs replace the distribution evenly)."""
    scale = (k - 1) / (n - 1)
    seen = [0] * k
    slots = []
    for j in range(n):
        i = round(j * scale)
        slots.append((seen[i], i))
        seen[i] += 1
    slots.sort()
    return tuple(i for _, i in slots)


# itemgetters (C) rather than comprehensions: a decode takes each of them three or four times over
# a window of up to 256 slots, and one decode comes with most decisions and reports
@functools.lru_cache(maxsize=64)
def _sorted_getter(k: int, n: int) -> Callable[[list[float]], tuple[float, ...]]:
    return operator.itemgetter(*sorted(_spread_order(k, n)))


@functools.lru_cache(maxsize=64)
def _spread_getter(k: int, n: int) -> Callable[[list[float]], tuple[float, ...]]:
    return operator.itemgetter(*_spread_order(k, n))


def _spread(sketch: list[float], n: int) -> list[float] | tuple[float, ...]:
    """A window of n slots from a sketch of its sorted values (see _spread_order)."""
    k = len(sketch)
    if n == k:
        return sketch
    return _spread_getter(k, n)(sketch)


def to_state(model: ReturnLegModel, generation: int = 0) -> bytes:
    """The client model's state; `generation` numbers the writes of one client's state."""
    if model._tracks_sources:
        raise ValueError("only a client's own model is encoded (a shared class model tracks its sources)")
    m = model
    n = len(m._residuals)
    points = min(n, SKETCH_POINTS)
    flags = ((_F_LEG_RANGE if m._leg_range else 0) | (_F_UP_RANGE if m._up_range else 0)
             | (_F_BAND if m._band else 0) | (_F_UP_BAND if m._up_band else 0)
             | (_F_SLOPE_TRUSTED if m._slope_trusted else 0) | (_F_LAST if m.last_return_ms is not None else 0))
    pair = lambda r: r if r is not None else (0.0, 0.0)  # noqa: E731
    fixed = (m._mu_u, m._mu_p, m._mu_r, m._s_uu, m._s_pp, m._s_up, m._s_ur, m._s_pr, m._s_ee,
             m._a, m._b, m._c, m.last_return_ms if m.last_return_ms is not None else 0.0,
             *pair(m._leg_range), *pair(m._up_range), *pair(m._band), *pair(m._up_band), 0.0)
    sketches = array("f")
    for window in (m._residuals, m._legs, m._ups):
        sketches.extend(_sketch(sorted(window), points))
    return (_HEADER.pack(VERSION, flags, generation & 0xFFFFFFFF, min(m.samples, 0xFFFFFFFF), n, points)
            + _FIXED.pack(*fixed) + sketches.tobytes())


def generation_of(state: bytes) -> int:
    return _HEADER.unpack_from(state)[2] if len(state) >= _HEADER.size else 0


def encode_leg(upload_ms: float, return_ms: float, basis_ms: float | None) -> bytes:
    """A reported leg as appended to a stored state."""
    return _LEG.pack(upload_ms, return_ms, math.nan if basis_ms is None else basis_ms)


def state_bytes(points: int) -> int:
    """The length of a state whose sketches hold `points` points (what follows it is legs)."""
    return _HEADER.size + _FIXED.size + 3 * points * 4


def pending_legs(value: bytes) -> int:
    """How many legs follow the state in a stored value."""
    return (len(value) - state_bytes(_HEADER.unpack_from(value)[5])) // PENDING_LEG_BYTES


def from_state(state: bytes, new_model: Callable[[], ReturnLegModel]) -> ReturnLegModel:
    """The model `state` encodes, loaded into `new_model()` (which gives its parameters), with the
    legs appended after it learned."""
    if len(state) < _HEADER.size + _FIXED.size:
        raise StateError(f"return-leg state of {len(state)} bytes is too short")
    version, flags, _, samples, n, points = _HEADER.unpack_from(state)
    if version != VERSION:
        raise StateError(f"return-leg state version {version} is not supported (this code reads {VERSION})")
    expected = state_bytes(points)
    if (len(state) < expected or (len(state) - expected) % PENDING_LEG_BYTES or points > SKETCH_POINTS
            or points > n or (n and not points)):
        raise StateError(f"return-leg state is malformed: {len(state)} bytes for {n} legs in {points}-point sketches")
    pending = state[expected:]
    state = state[:expected]
    fixed = _FIXED.unpack_from(state, _HEADER.size)
    if not all(math.isfinite(x) for x in fixed):
        raise StateError("return-leg state holds a non-finite number")
    sketches = array("f")
    sketches.frombytes(state[_HEADER.size + _FIXED.size:])
    model = new_model()
    if model._tracks_sources:
        raise ValueError("a return-leg state loads into a client model (no source tracking)")
    if n > model.window:
        raise StateError(f"return-leg state holds {n} legs, more than the model's window of {model.window}")
    m = model
    (m._mu_u, m._mu_p, m._mu_r, m._s_uu, m._s_pp, m._s_up, m._s_ur, m._s_pr, m._s_ee,
     m._a, m._b, m._c, last) = fixed[:13]
    m.last_return_ms = last if flags & _F_LAST else None
    m._leg_range = (fixed[13], fixed[14]) if flags & _F_LEG_RANGE else None
    m._up_range = (fixed[15], fixed[16]) if flags & _F_UP_RANGE else None
    m._band = (fixed[17], fixed[18]) if flags & _F_BAND else None
    m._up_band = (fixed[19], fixed[20]) if flags & _F_UP_BAND else None
    m._slope_trusted = bool(flags & _F_SLOPE_TRUSTED)
    m.samples = samples
    residuals, legs, ups = (list(sketches[i * points:(i + 1) * points]) for i in range(3))
    m._residuals = list(_spread(residuals, n))
    m._legs = array("d", _spread(legs, n))
    m._ups = array("d", _spread(ups, n))
    m._next = 0
    m._sorted = tuple(sorted(m._residuals)) if n <= SKETCH_POINTS else _sorted_getter(points, n)(residuals) if n else (0.0,)
    m._dirty = 0
    for upload_ms, return_ms, basis_ms in _LEG.iter_unpack(pending):
        if not (math.isfinite(upload_ms) and math.isfinite(return_ms)) or math.isinf(basis_ms):
            raise StateError("a pending return leg holds a non-finite number")
        m.observe(upload_ms, return_ms, None if math.isnan(basis_ms) else basis_ms)
    return m
