"""Where the shared real network traces live: read from a path, never copied into the repo."""

from __future__ import annotations

import os
from pathlib import Path

_REPO_ROOT = Path(__file__).resolve().parents[3]


def default_traces_dir(environ: "os._Environ[str] | dict[str, str] | None" = None) -> Path:
    """MODIPICK_TRACES_DIR, else `../shared/traces` beside the checkout, else /work/shared/traces."""
    env = os.environ if environ is None else environ
    if env.get("MODIPICK_TRACES_DIR"):
        return Path(env["MODIPICK_TRACES_DIR"])
    beside = _REPO_ROOT.parent / "shared" / "traces"
    return beside if beside.is_dir() else Path("/work/shared/traces")
