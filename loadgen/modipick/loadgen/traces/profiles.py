"""Named parametric network profiles (the paper's measured networks) and CV sweeps.

A profile is the distribution of the one-way time to send a REFERENCE_BYTES (330 KB) image, as
the paper measured it; the simulation draws it as a normal clamped at 0 (or a lognormal with the
same mean and standard deviation). A leg for another size scales with the size.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, replace
from importlib import resources

REFERENCE_BYTES = 330_000

# Copied from the paper's networks.csv; modipick.sim's packaged
# copy is preferred when present so both read one table.
_BUILTIN_NETWORKS_CSV = """network,mean_ms,std_ms,note
campus_wifi,57.87,30.79,measured one-way time to send a 330KB image over campus WiFi
home,92.02,48.38,measured residential network
lte,364.66,170.59,measured LTE
artificial,50.0,25.0,paper section 4.4 (CV 50%)
perfect,50.0,0.0,paper figure 7 start (CV 0%)
"""

DISTRIBUTIONS = ("normal", "lognormal")


@dataclass(frozen=True, slots=True)
class NetworkProfile:
    name: str
    mean_ms: float
    std_ms: float
    dist: str = "normal"
    note: str = ""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.mean_ms) and self.mean_ms > 0):
            raise ValueError(f"network {self.name}: mean must be > 0 ms, got {self.mean_ms!r}")
        if not (math.isfinite(self.std_ms) and self.std_ms >= 0):
            raise ValueError(f"network {self.name}: std must be >= 0 ms, got {self.std_ms!r}")
        if self.dist not in DISTRIBUTIONS:
            raise ValueError(f"network {self.name}: distribution must be one of {DISTRIBUTIONS}, got {self.dist!r}")

    @property
    def cv(self) -> float:
        return self.std_ms / self.mean_ms

    def scaled(self, factor: float) -> "NetworkProfile":
        return replace(self, mean_ms=self.mean_ms * factor, std_ms=self.std_ms * factor)


def _table_text() -> str:
    try:
        return resources.files("modipick.sim").joinpath("data/networks.csv").read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError, NotADirectoryError, OSError):
        return _BUILTIN_NETWORKS_CSV


def named_profiles() -> dict[str, NetworkProfile]:
    table: dict[str, NetworkProfile] = {}
    for row in csv.DictReader(io.StringIO(_table_text())):
        table[row["network"].strip()] = NetworkProfile(row["network"].strip(), float(row["mean_ms"]),
                                                       float(row["std_ms"]), note=(row.get("note") or "").strip())
    return table


def cv_profile(mean_ms: float, cv: float, dist: str = "normal") -> NetworkProfile:
    return NetworkProfile(f"cv{cv * 100:g}%", mean_ms, mean_ms * cv, dist, f"mean {mean_ms:g} ms, CV {cv:.0%}")


def cv_sweep(mean_ms: float, cvs: list[float], dist: str = "normal") -> list[NetworkProfile]:
    """The paper's section 4.3 networks: fixed mean, increasing coefficient of variation."""
    return [cv_profile(mean_ms, cv, dist) for cv in cvs]
