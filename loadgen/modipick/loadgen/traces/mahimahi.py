"""Mahimahi delivery-opportunity traces (`.up` / `.down`): one integer per line, a millisecond
timestamp at which one 1500-byte packet may cross; repeated timestamps are several packets.

As in mm-link, the trace repeats with a period equal to its last timestamp, which must be > 0.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from modipick.loadgen.errors import LoadgenInputError
from modipick.loadgen.traces.schedule import DeliverySchedule
from modipick.loadgen.traces.textio import read_lines


def read_mahimahi(path: str | os.PathLike[str]) -> DeliverySchedule:
    source = os.fspath(path)
    times: list[int] = []
    previous, previous_line = -1, 0
    for number, text in read_lines(source):
        try:
            value = int(text)
        except ValueError:
            raise LoadgenInputError(source, f"expected one integer millisecond timestamp per line, got {text!r}",
                                    number) from None
        if value < 0:
            raise LoadgenInputError(source, f"timestamp must be >= 0, got {value}", number)
        if value < previous:
            raise LoadgenInputError(source, f"timestamps must not decrease ({value} after {previous} on line "
                                    f"{previous_line})", number)
        times.append(value)
        previous, previous_line = value, number
    if not times:
        raise LoadgenInputError(source, "empty trace: no delivery opportunities")
    if times[-1] <= 0:
        raise LoadgenInputError(source, "trace must last a nonzero time (last timestamp is 0)", previous_line)
    return DeliverySchedule(np.asarray(times, dtype=np.float64), float(times[-1]), Path(source).name)


def mahimahi_pair(path: str | os.PathLike[str]) -> tuple[Path, Path] | None:
    """(up, down) for `X.up`, `X.down` or a stem `X` with both siblings; None if neither exists."""
    p = Path(path)
    if p.suffix in (".up", ".down"):
        stem = p.with_suffix("")
    else:
        stem = p
    up, down = Path(f"{stem}.up"), Path(f"{stem}.down")
    if up.is_file() and down.is_file():
        return up, down
    return None


def looks_like_mahimahi(path: str | os.PathLike[str]) -> bool:
    """Named .up/.down, or its first non-blank line is a bare integer."""
    if Path(path).suffix in (".up", ".down"):
        return True
    for _, text in read_lines(path):
        return text.isdigit()
    return False
