"""One-way network time models, and how the return leg relates to the upload leg.

Spec strings (CLI --network):
  campus_wifi | home | lte | artificial | perfect   a row of networks.csv, normal distribution
  campus_wifi:gamma                                  the same mean/std as a gamma distribution
  dist:normal:MEAN:CV | dist:gamma:MEAN:CV           CV as a fraction (0.5) or a percentage (50%)
  trace:FILE                                         per-request network times (see TraceNetwork)
  bwtrace:GLOB                                       bandwidth traces -> transfer times (traces.py)

"normal" is the paper authors' simulator: N(mean, std) resampled while <= 0.
"""

from __future__ import annotations

import csv
import glob
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from modipick.sim.errors import SimInputError
from modipick.sim.models import number, read_rows, resolve_table

NETWORK_COLUMNS = ("network", "mean_ms", "std_ms")
PACKAGED_NETWORKS = {"networks": "networks.csv"}
RETURN_LEGS = ("mirror", "independent", "paired")
DEFAULT_PAYLOAD_BYTES = 330_000  # the paper's 330 KB image


class Network(Protocol):
    label: str

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n one-way network times in ms (>= 0)."""
        ...


@dataclass(frozen=True)
class NormalNetwork:
    mean_ms: float
    std_ms: float
    label: str = ""

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        if self.std_ms == 0:
            return np.full(n, self.mean_ms)
        out = rng.normal(self.mean_ms, self.std_ms, n)
        bad = out <= 0
        while bad.any():  # the authors' simulator: resample while <= 0
            out[bad] = rng.normal(self.mean_ms, self.std_ms, int(bad.sum()))
            bad = out <= 0
        return out


@dataclass(frozen=True)
class GammaNetwork:
    mean_ms: float
    std_ms: float
    label: str = ""

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        if self.std_ms == 0:
            return np.full(n, self.mean_ms)
        cv2 = (self.std_ms / self.mean_ms) ** 2
        return rng.gamma(1.0 / cv2, self.mean_ms * cv2, n)


@dataclass(frozen=True, eq=False)
class TraceNetwork:
    """Per-request times replayed in order from a random start (wrapping), keeping the trace's
    autocorrelation. `returns`, when given, is the paired return leg (return leg "paired")."""

    uploads: np.ndarray
    returns: np.ndarray | None = None
    label: str = ""

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.uploads[self._indices(n, rng)]

    def draw_pair(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        if self.returns is None:
            raise SimInputError(f"{self.label}: return leg 'paired' needs a return_ms column in the trace")
        idx = self._indices(n, rng)
        return self.uploads[idx], self.returns[idx]

    def _indices(self, n: int, rng: np.random.Generator) -> np.ndarray:
        start = int(rng.integers(len(self.uploads)))
        return (start + np.arange(n)) % len(self.uploads)


def draw_legs(network: Network, return_leg: str, n: int, upload_rng: np.random.Generator,
              return_rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    if return_leg == "mirror":
        up = network.draw(n, upload_rng)
        return up, up
    if return_leg == "independent":
        return network.draw(n, upload_rng), network.draw(n, return_rng)
    if return_leg == "paired":
        if not isinstance(network, TraceNetwork):
            raise SimInputError("return leg 'paired' needs --network trace:FILE with a return_ms column")
        return network.draw_pair(n, upload_rng)
    raise SimInputError(f"--return-leg {return_leg!r}: expected one of {', '.join(RETURN_LEGS)}")


def parse_cv(text: str, spec: str) -> float:
    raw = text.strip()
    try:
        cv = float(raw[:-1]) / 100.0 if raw.endswith("%") else float(raw)
    except ValueError:
        raise SimInputError(f"--network {spec!r}: CV {text!r} is not a number") from None
    if not math.isfinite(cv) or cv < 0:
        raise SimInputError(f"--network {spec!r}: CV {text!r} must be >= 0")
    return cv


def make_distribution(kind: str, mean_ms: float, std_ms: float, label: str, spec: str) -> Network:
    if not (math.isfinite(mean_ms) and mean_ms > 0):
        raise SimInputError(f"--network {spec!r}: mean {mean_ms!r} must be a number > 0")
    if kind == "normal":
        return NormalNetwork(mean_ms, std_ms, label)
    if kind == "gamma":
        return GammaNetwork(mean_ms, std_ms, label)
    raise SimInputError(f"--network {spec!r}: unknown distribution {kind!r} (normal, gamma)")


def load_profiles(networks_csv: str | Path) -> dict[str, tuple[float, float]]:
    path = resolve_table(str(networks_csv), PACKAGED_NETWORKS, "--networks-csv")
    profiles: dict[str, tuple[float, float]] = {}
    for line, row in read_rows(path, NETWORK_COLUMNS):
        name = (row.get("network") or "").strip()
        if not name or name in profiles:
            raise SimInputError(f"{path}: line {line}: network name {name!r} is empty or a duplicate")
        profiles[name] = (number(path, line, row, "mean_ms"), number(path, line, row, "std_ms"))
    if not profiles:
        raise SimInputError(f"{path}: no network rows")
    return profiles


def parse_network(spec: str, *, networks_csv: str | Path = "networks",
                  payload_bytes: int = DEFAULT_PAYLOAD_BYTES) -> Network:
    kind, _, rest = spec.partition(":")
    if kind == "dist":
        parts = rest.split(":")
        if len(parts) != 3:
            raise SimInputError(f"--network {spec!r}: expected dist:normal|gamma:MEAN:CV")
        try:
            mean = float(parts[1])
        except ValueError:
            raise SimInputError(f"--network {spec!r}: mean {parts[1]!r} is not a number") from None
        cv = parse_cv(parts[2], spec)
        return make_distribution(parts[0], mean, mean * cv, f"{parts[0]}({mean:g}ms, CV {cv:.0%})", spec)
    if kind == "trace":
        return load_trace(Path(rest), spec)
    if kind == "bwtrace":
        from modipick.sim.traces import transfer_times

        files = sorted(f for f in glob.glob(rest) if not f.endswith(".md"))
        if not files:
            raise SimInputError(f"--network {spec!r}: no file matches {rest!r}")
        times = np.concatenate([transfer_times(Path(f), payload_bytes) for f in files])
        return TraceNetwork(times, None, f"bwtrace({Path(rest).name}, {len(files)} files)")
    profiles = load_profiles(networks_csv)
    if kind not in profiles:
        raise SimInputError(f"--network {spec!r}: unknown profile {kind!r} "
                            f"(known: {', '.join(profiles)}; or dist:..., trace:FILE, bwtrace:GLOB)")
    mean, std = profiles[kind]
    return make_distribution(rest or "normal", mean, std, kind if not rest else f"{kind}:{rest}", spec)


def load_trace(path: Path, spec: str) -> TraceNetwork:
    """A CSV of per-request network times in ms: with a header naming `network_ms` (or `upload_ms`)
    and optionally `return_ms`, or without header one or two numeric columns (upload[, return])."""
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = [(i, r) for i, r in enumerate(csv.reader(fh), start=1) if any(c.strip() for c in r)]
    except OSError as e:
        raise SimInputError(f"--network {spec!r}: cannot read {path} ({e.strerror or e})") from None
    if not rows:
        raise SimInputError(f"{path}: no rows")
    header = [c.strip() for c in rows[0][1]]
    try:
        float(header[0])
        up_col, ret_col = 0, (1 if len(header) > 1 else None)
    except ValueError:
        up_name = next((c for c in ("network_ms", "upload_ms") if c in header), None)
        if up_name is None:
            raise SimInputError(f"{path}: missing column network_ms (header: {','.join(header)})") from None
        up_col = header.index(up_name)
        ret_col = header.index("return_ms") if "return_ms" in header else None
        rows = rows[1:]
    if not rows:
        raise SimInputError(f"{path}: no rows")
    ups, rets = [], []
    for line, row in rows:
        ups.append(trace_value(path, line, row, up_col))
        if ret_col is not None:
            rets.append(trace_value(path, line, row, ret_col))
    return TraceNetwork(np.asarray(ups), np.asarray(rets) if rets else None, f"trace({path.name})")


def trace_value(path: Path, line: int, row: list[str], col: int) -> float:
    raw = row[col].strip() if col < len(row) else ""
    try:
        value = float(raw)
    except ValueError:
        raise SimInputError(f"{path}: line {line}: {raw!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise SimInputError(f"{path}: line {line}: {raw!r} must be a finite number >= 0")
    return value
