"""Per-request network-time CSV: one row per request, as measured by an app (paper Figure 1).

A header names the columns (case-insensitive; extra columns are ignored):
    upload_ms   one-way time to send the request (aliases: t_input_ms, input_ms)
    return_ms   time for the reply to come back (aliases: download_ms, output_ms) - optional
    network_ms  total network time, split evenly into the two legs when upload_ms is absent (alias: rtt_ms)
    send_time_s / send_time_ms   when the request was sent (optional; used by `--arrivals trace`)
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modipick.loadgen.errors import LoadgenInputError
from modipick.loadgen.traces.textio import parse_float

_UPLOAD = ("upload_ms", "t_input_ms", "input_ms")
_RETURN = ("return_ms", "download_ms", "output_ms")
_TOTAL = ("network_ms", "rtt_ms")
_TIME_S = ("send_time_s", "time_s", "timestamp_s")
_TIME_MS = ("send_time_ms", "timestamp_ms")


@dataclass(frozen=True, eq=False)
class RequestTimes:
    upload_ms: np.ndarray
    return_ms: np.ndarray | None  # None: derive from the upload leg and the sizes
    send_times_s: np.ndarray | None
    source: str = "requests"

    def scaled(self, factor: float) -> "RequestTimes":
        return RequestTimes(self.upload_ms * factor, None if self.return_ms is None else self.return_ms * factor,
                            self.send_times_s, f"{self.source} x{factor:.3g}")


def _column(header: list[str], names: tuple[str, ...]) -> int | None:
    for name in names:
        if name in header:
            return header.index(name)
    return None


def looks_like_request_csv(path: str | os.PathLike[str]) -> bool:
    try:
        with open(path, encoding="utf-8") as handle:
            first = handle.readline().strip().lower()
    except (OSError, UnicodeDecodeError):
        return False
    names = {f.strip() for f in first.split(",")}
    return bool(names & set(_UPLOAD + _TOTAL))


def read_request_csv(path: str | os.PathLike[str]) -> RequestTimes:
    source = os.fspath(path)
    try:
        handle = open(source, encoding="utf-8", newline="")
    except FileNotFoundError:
        raise LoadgenInputError(source, "no such file") from None
    except OSError as exc:
        raise LoadgenInputError(source, exc.strerror or str(exc)) from None
    with handle:
        rows = csv.reader(handle)
        try:
            header = [h.strip().lower() for h in next(rows)]
        except StopIteration:
            raise LoadgenInputError(source, "empty file: expected a header such as 'upload_ms,return_ms'") from None
        except UnicodeDecodeError:
            raise LoadgenInputError(source, "not a text file") from None
        up, ret, total = _column(header, _UPLOAD), _column(header, _RETURN), _column(header, _TOTAL)
        t_s, t_ms = _column(header, _TIME_S), _column(header, _TIME_MS)
        if up is None and total is None:
            raise LoadgenInputError(source, "header needs an upload_ms or network_ms column, got "
                                            f"{','.join(header)}", 1)
        uploads: list[float] = []
        returns: list[float] = []
        times: list[float] = []
        for number, row in enumerate(rows, start=2):
            if not row or all(not f.strip() for f in row):
                continue
            if len(row) < len(header):
                raise LoadgenInputError(source, f"expected {len(header)} fields, got {len(row)}", number)

            def value(col: int) -> float:
                v = parse_float(source, number, row[col].strip(), header[col])
                if v < 0:
                    raise LoadgenInputError(source, f"{header[col]} must be >= 0, got {row[col].strip()!r}", number)
                return v

            if up is not None:
                uploads.append(value(up))
                if ret is not None:
                    returns.append(value(ret))
            else:
                half = value(total) / 2  # type: ignore[arg-type]
                uploads.append(half)
                returns.append(half)
            if t_s is not None or t_ms is not None:
                t = value(t_s) if t_s is not None else value(t_ms) / 1000.0  # type: ignore[arg-type]
                if times and t < times[-1]:
                    raise LoadgenInputError(source, f"send times must not decrease ({t:g} s after {times[-1]:g} s)",
                                            number)
                times.append(t)
    if not uploads:
        raise LoadgenInputError(source, "no rows after the header")
    return RequestTimes(np.asarray(uploads), np.asarray(returns) if returns else None,
                        np.asarray(times) - times[0] if times else None, Path(source).name)
