"""The digits pool, built once and cached across test runs (real SavedModels, real accuracies).

`digits_pool` is the base path (TF Serving layout: <base>/<model>/1/, models.config, manifest.json).
The cache lives in $MODIPICK_TEST_ZOO_CACHE or ~/.cache/modipick/test-zoo; a run whose recipes
match the cached manifest reuses it at once, otherwise the pool is (re)built in a subprocess
(~1 min on two busy cores), so the test process itself never trains anything.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BUILD_TIMEOUT_S = 900


def zoo_cache_root() -> Path:
    root = os.environ.get("MODIPICK_TEST_ZOO_CACHE") or str(Path.home() / ".cache" / "modipick" / "test-zoo")
    return Path(root)




def build_cached(pool: str, out: Path, *extra: str) -> Path:
    """Build `pool` into `out` unless the cache already holds it; returns `out`."""
    from modipick.zoo.builder import BuildRequest, is_current

    models = ()
    if "--models" in extra:
        models = tuple(extra[extra.index("--models") + 1].split(","))
    input_size = int(extra[extra.index("--input-size") + 1]) if "--input-size" in extra else None
    if is_current(BuildRequest(pool=pool, out=out, models=models, input_size=input_size, tflite="--tflite" in extra)):
        return out
    command = [sys.executable, "-c", "import sys; from modipick.zoo.cli import main; sys.exit(main(sys.argv[1:]))",
               "build", "--pool", pool, "--out", str(out), *extra]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    if done.returncode != 0:
        raise RuntimeError(f"zoo build of {pool} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return out


@pytest.fixture(scope="session")
def digits_pool() -> Path:
    return build_cached("digits", zoo_cache_root() / "digits")


@pytest.fixture(scope="session")
def digits():
    """The held-out digits (images, labels) no model of the pool was trained on."""
    from modipick.zoo.digits import held_out_digits

    return held_out_digits()
