"""Where the simulator finds real network traces: the ones shipped with modipick.loadgen, after any
folders given on the command line or in MODIPICK_TRACES_DIR (modipick.loadgen.traces.catalog)."""

from __future__ import annotations

from modipick.loadgen.traces.catalog import SHIPPED_DIR, resolve, search_path

__all__ = ["SHIPPED_DIR", "resolve", "search_path"]
