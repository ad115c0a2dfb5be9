"""A network class's shared leg: versioned bytes that round-trip and refuse what they cannot read."""

from __future__ import annotations

import math
import struct

import pytest

from modipick.core.class_legs import ClassLeg, ClassLegError, decode_class_leg, encode_class_leg


@pytest.mark.parametrize("leg", [ClassLeg("lte/phone-7", 41.5, 63.25, None), ClassLeg("wifi/é-1", 0.0, 12.0, 15.5),
                                 ClassLeg("", 3.0, 4.0, 0.0)])
def test_a_leg_round_trips(leg):
    raw = encode_class_leg(leg)
    assert decode_class_leg(raw) == leg
    assert len(raw) == 25 + len(leg.client_id.encode())


@pytest.mark.parametrize("raw, why", [
    (b"\x01short", "at least 25"),
    (struct.pack("<Bddd", 2, 1.0, 2.0, math.nan) + b"c", "version 2"),
    (struct.pack("<Bddd", 1, math.inf, 2.0, math.nan) + b"c", "finite"),
    (struct.pack("<Bddd", 1, 1.0, -2.0, math.nan) + b"c", "finite ms >= 0"),
    (struct.pack("<Bddd", 1, 1.0, 2.0, math.nan) + b"\xff\xfe", "UTF-8"),
])
def test_what_cannot_be_read_is_refused_with_the_reason(raw, why):
    with pytest.raises(ClassLegError, match=why):
        decode_class_leg(raw)
