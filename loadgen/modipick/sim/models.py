"""Model tables with the columns of the paper's table2.csv: model,top1_accuracy_pct,mean_ms,std_ms.

The values are the *truth* the simulator draws execution times from (normal(mean, std) clipped at
0) and, unless a scenario says otherwise, also the warmed-up profiles the policies decide on.
"""

from __future__ import annotations

import csv
import math
from importlib import resources
from pathlib import Path
from typing import NamedTuple

from modipick.core import Candidate
from modipick.sim.errors import SimInputError

MODEL_COLUMNS = ("model", "top1_accuracy_pct", "mean_ms", "std_ms")
# Packaged copies of the paper's tables (the paper's numbers, not traces).
PACKAGED_MODELS = {"table2": "table2.csv", "profiles_cpu_c5": "profiles_cpu_c5.csv", "c5": "profiles_cpu_c5.csv"}


class ModelSpec(NamedTuple):
    name: str
    accuracy: float  # percent
    mean_ms: float
    std_ms: float

    def candidate(self) -> Candidate:
        return Candidate(self.name, 1, self.accuracy, self.mean_ms, self.std_ms)


def data_file(name: str) -> Path:
    return Path(str(resources.files("modipick.sim") / "data" / name))


def resolve_table(value: str, packaged: dict[str, str], what: str) -> Path:
    """A packaged table by short name, else a file path that must exist."""
    if value in packaged:
        return data_file(packaged[value])
    path = Path(value)
    if not path.is_file():
        names = ", ".join(sorted(packaged))
        raise SimInputError(f"{what} {value!r}: no such file (packaged tables: {names})")
    return path


def read_rows(path: Path, required: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) for every non-blank data row; header checked for `required` columns."""
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip() for h in (reader.fieldnames or [])]
            missing = [c for c in required if c not in header]
            if missing:
                raise SimInputError(f"{path}: missing column {', '.join(missing)} "
                                    f"(header: {','.join(header) or '<empty>'})")
            reader.fieldnames = header
            rows = []
            for row in reader:
                if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
                    continue
                rows.append((reader.line_num, row))
    except OSError as e:
        raise SimInputError(f"{path}: cannot read ({e.strerror or e})") from None
    except (UnicodeDecodeError, csv.Error) as e:
        raise SimInputError(f"{path}: not a readable CSV ({e})") from None
    return rows


def number(path: Path, line: int, row: dict[str, str], column: str, *, upper: float | None = None) -> float:
    raw = (row.get(column) or "").strip()
    try:
        value = float(raw)
    except ValueError:
        raise SimInputError(f"{path}: line {line}: {column} {raw!r} is not a number") from None
    if not math.isfinite(value) or value < 0 or (upper is not None and value > upper):
        bound = f"0..{upper:g}" if upper is not None else ">= 0"
        raise SimInputError(f"{path}: line {line}: {column} {raw!r} must be a finite number {bound}")
    return value


def load_models(value: str | Path) -> tuple[ModelSpec, ...]:
    path = resolve_table(str(value), PACKAGED_MODELS, "--models")
    models: list[ModelSpec] = []
    first_line: dict[str, int] = {}
    for line, row in read_rows(path, MODEL_COLUMNS):
        name = (row.get("model") or "").strip()
        if not name:
            raise SimInputError(f"{path}: line {line}: empty model name")
        if name in first_line:
            raise SimInputError(f"{path}: line {line}: duplicate model name {name!r} "
                                f"(first on line {first_line[name]})")
        first_line[name] = line
        models.append(ModelSpec(name, number(path, line, row, "top1_accuracy_pct", upper=100.0),
                                number(path, line, row, "mean_ms"), number(path, line, row, "std_ms")))
    if not models:
        raise SimInputError(f"{path}: no model rows")
    return tuple(models)


def select_models(models: tuple[ModelSpec, ...], *, first: int | None = None,
                  exclude: tuple[str, ...] = ()) -> tuple[ModelSpec, ...]:
    known = {m.name for m in models}
    for name in exclude:
        if name not in known:
            raise SimInputError(f"--exclude {name!r}: no such model (known: {', '.join(sorted(known))})")
    chosen = tuple(m for m in models if m.name not in exclude)
    if first is not None:
        if first <= 0:
            raise SimInputError(f"--first {first}: must be >= 1")
        chosen = chosen[:first]
    if not chosen:
        raise SimInputError("no models left after --first/--exclude")
    return chosen
