"""One record per request, and their CSV form."""

from __future__ import annotations

import csv
import dataclasses
import os
from dataclasses import dataclass
from typing import Iterable

from modipick.loadgen.errors import LoadgenInputError


@dataclass(slots=True)
class RequestRecord:
    run: str                  # label of the run (policy / SLA / network)
    policy: str
    network: str
    sla_ms: float
    index: int
    request_id: str
    intended_s: float         # intended send time, seconds after the run's start
    lag_ms: float             # when the request actually started minus its intended time
    upload_ms: float          # network legs from the trace (0 in direct mode)
    return_ms: float
    upload_actual_ms: float | None = None   # realtime mode: intended send -> RPC start, as waited
    return_actual_ms: float | None = None   # realtime mode: reply -> done, as waited
    status: str = "OK"
    error: str = ""
    disposition: str = ""
    model: str = ""
    version: int = 0
    reason: str = ""
    server_upload_ms: float | None = None   # the Selector's view of the upload leg
    budget_ms: float | None = None
    selection_ms: float | None = None
    queue_ms: float | None = None
    execution_ms: float | None = None
    server_ms: float | None = None
    rpc_ms: float = 0.0
    e2e_ms: float = 0.0       # intended send time -> reply back at the client (after the return leg)
    sla_met: bool = False
    label: int | None = None
    predicted: int | None = None
    correct: bool | None = None
    network_cv: float | None = None         # CV of the network's upload legs (for plots vs CV)
    client_id: str = ""                     # the emulated client that sent it ("CLASS/ID")
    return_leg_source: str = ""             # whose return-leg model decided: client | class | prior
    upload: str = ""                        # what the client uploaded ("adaptive", "fixed:224"; "": the input)

    @property
    def served(self) -> bool:
        return self.status == "OK" and self.disposition == "served"


FIELDS = [f.name for f in dataclasses.fields(RequestRecord)]
# columns added after the first records files were written: older files read with their defaults
OPTIONAL = frozenset({"client_id", "return_leg_source", "upload"})
_TYPES = {f.name: f.type for f in dataclasses.fields(RequestRecord)}


def _cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        return f"{value:.4f}"
    return value


def write_records(path: str | os.PathLike[str], records: Iterable[RequestRecord]) -> int:
    count = 0
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(FIELDS)
        for record in records:
            writer.writerow([_cell(getattr(record, name)) for name in FIELDS])
            count += 1
    return count


def _parse(name: str, text: str) -> object:
    kind = _TYPES[name]
    if text == "" and "None" in kind:
        return None
    if kind.startswith("float"):
        return float(text)
    if kind.startswith("int"):
        return int(text)
    if kind.startswith("bool"):
        return text in ("1", "True", "true")
    return text


def read_records(path: str | os.PathLike[str]) -> list[RequestRecord]:
    source = os.fspath(path)
    try:
        handle = open(source, encoding="utf-8", newline="")
    except OSError as exc:
        raise LoadgenInputError(source, exc.strerror or str(exc)) from None
    records: list[RequestRecord] = []
    with handle:
        reader = csv.DictReader(handle)
        present = [name for name in FIELDS if name in (reader.fieldnames or [])]
        missing = [name for name in FIELDS if name not in present and name not in OPTIONAL]
        if missing:
            raise LoadgenInputError(source, f"not a loadgen records file: missing columns {', '.join(missing)}", 1)
        for number, row in enumerate(reader, start=2):
            try:
                records.append(RequestRecord(**{name: _parse(name, row[name]) for name in present}))
            except ValueError as exc:
                raise LoadgenInputError(source, str(exc), number) from None
    return records
