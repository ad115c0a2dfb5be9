"""Plain helpers for the simulator tests (fixtures: conftest.py). A plain module, not the conftest,
so `from sim_support import ...` means this file in any run."""

from __future__ import annotations

import csv
from pathlib import Path


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


GOOD_MODELS = """model,top1_accuracy_pct,mean_ms,std_ms
fast,50.0,5.0,0.1
medium,70.0,30.0,0.2
slow,80.0,100.0,0.5
"""
