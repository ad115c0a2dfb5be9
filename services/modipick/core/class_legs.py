"""One reported return leg of a network class's client, as the bytes Selector replicas share so
that a class model is learned from the fleet's reports while it is not ready yet, and so that a
replica that starts later finds it ready at once (modipick.selector.client_legs).

Layout (little-endian): version u8, upload, return and basis ms as float64 (basis NaN: none), then
the client id in UTF-8 (the class model caps each client's share of its window by it).
"""

from __future__ import annotations

import math
import struct
from typing import NamedTuple

VERSION = 1
_LAYOUT = struct.Struct("<Bddd")


class ClassLegError(ValueError):
    """Bytes that are not a class leg this code can read; the message says why."""


class ClassLeg(NamedTuple):
    client_id: str
    upload_ms: float
    return_ms: float
    basis_ms: float | None  # the basis of the class's estimate the decision used (None: the class did not decide)


def encode_class_leg(leg: ClassLeg) -> bytes:
    basis = math.nan if leg.basis_ms is None else leg.basis_ms
    return _LAYOUT.pack(VERSION, leg.upload_ms, leg.return_ms, basis) + leg.client_id.encode()


def decode_class_leg(raw: bytes) -> ClassLeg:
    if len(raw) < _LAYOUT.size:
        raise ClassLegError(f"{len(raw)} bytes, a class leg has at least {_LAYOUT.size}")
    version, upload_ms, return_ms, basis_ms = _LAYOUT.unpack_from(raw)
    if version != VERSION:
        raise ClassLegError(f"version {version}, this code reads {VERSION}")
    if not (math.isfinite(upload_ms) and math.isfinite(return_ms) and upload_ms >= 0 and return_ms >= 0):
        raise ClassLegError(f"legs must be finite ms >= 0, got {upload_ms!r} and {return_ms!r}")
    try:
        client_id = raw[_LAYOUT.size:].decode()
    except UnicodeDecodeError as exc:
        raise ClassLegError(f"client id is not UTF-8: {exc}") from None
    return ClassLeg(client_id, upload_ms, return_ms, None if math.isnan(basis_ms) else basis_ms)
