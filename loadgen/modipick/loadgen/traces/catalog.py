"""The real network traces the tools can read: those shipped in this package (`data/<set>/`, each with
its SOURCE.md and licence beside the files) and any folders the user adds (`--traces-dir`,
MODIPICK_TRACES_DIR). A relative trace path is looked up in the added folders first, then in the
shipped ones, so a local copy of a larger set can stand in for the shipped subset."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

SHIPPED_DIR = Path(__file__).resolve().parent / "data"
ENV_VAR = "MODIPICK_TRACES_DIR"
_NOT_TRACES = {"SOURCE.md", "LICENSE", "COPYING", "README.md"}


@dataclass(frozen=True, slots=True)
class TraceSet:
    name: str             # folder name, the prefix of its traces' relative paths
    folder: Path
    traces: tuple[str, ...]  # network specs relative to the folder's parent (Mahimahi pairs once)
    title: str            # first heading of SOURCE.md
    licence: str          # the "Licence:" line of SOURCE.md
    shipped: bool


def search_path(extra: Sequence[Path | str] = (), environ: Mapping[str, str] | None = None) -> tuple[Path, ...]:
    """Folders to look relative trace paths up in, in order: `extra` (--traces-dir), the
    os.pathsep-separated MODIPICK_TRACES_DIR, then the shipped traces."""
    env = os.environ if environ is None else environ
    dirs = [Path(d).expanduser() for d in extra if str(d)]
    dirs += [Path(d).expanduser() for d in env.get(ENV_VAR, "").split(os.pathsep) if d.strip()]
    dirs.append(SHIPPED_DIR)
    unique: list[Path] = []
    for d in dirs:
        if d not in unique:
            unique.append(d)
    return tuple(unique)


def resolve(relative: str | Path, dirs: Iterable[Path] = (SHIPPED_DIR,)) -> Path:
    """The first `dir / relative` that exists (a Mahimahi `X` exists as `X.up` + `X.down`), else
    the path under the last folder (so errors name a real place)."""
    candidate = Path(relative)
    last = candidate
    for folder in dirs:
        last = folder / candidate
        if last.exists() or (last.with_name(last.name + ".up").exists()
                             and last.with_name(last.name + ".down").exists()):
            return last
    return last


def trace_sets(dirs: Iterable[Path]) -> list[TraceSet]:
    """Every trace set (a folder holding trace files) directly under each of `dirs`; a folder that
    is itself a set (trace files at its top) is listed under its own name."""
    found: list[TraceSet] = []
    seen: set[str] = set()
    for root in dirs:
        if not root.is_dir():
            continue
        folders = [root] if _trace_files(root) else sorted(p for p in root.iterdir() if p.is_dir())
        for folder in folders:
            files = _trace_files(folder)
            if not files or folder.name in seen:
                continue
            seen.add(folder.name)
            title, licence = _describe(folder / "SOURCE.md")
            found.append(TraceSet(folder.name, folder, _specs(folder.name, files), title, licence,
                                  shipped=folder.parent == SHIPPED_DIR))
    return found


def _trace_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()
                  if p.is_file() and p.name not in _NOT_TRACES and not p.name.startswith("."))


def _specs(prefix: str, files: list[str]) -> tuple[str, ...]:
    names = set(files)
    specs: list[str] = []
    for name in files:
        stem, _, suffix = name.rpartition(".")
        if suffix in ("up", "down") and {f"{stem}.up", f"{stem}.down"} <= names:
            if suffix == "up":
                specs.append(f"{prefix}/{stem}")  # a Mahimahi pair: one network, both directions
            continue
        specs.append(f"{prefix}/{name}")
    return tuple(specs)


def _describe(source: Path) -> tuple[str, str]:
    try:
        text = source.read_text(encoding="utf-8")
    except OSError:
        return "", "unknown (no SOURCE.md)"
    title = next((ln.lstrip("# ").strip() for ln in text.splitlines() if ln.startswith("#")), "")
    match = re.search(r"^\s*-?\s*Licen[cs]e:\s*(.+)$", text, re.MULTILINE | re.IGNORECASE)
    licence = match.group(1).strip() if match else "not stated in SOURCE.md"
    return title, _first_clause(licence)


def _first_clause(text: str) -> str:
    for stop in (" (", ", ", "; ", ". "):
        head, sep, _ = text.partition(stop)
        if sep:
            text = head
    return text.strip().rstrip(".")
