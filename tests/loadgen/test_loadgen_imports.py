"""The load generator never imports TensorFlow (architecture rule), even when it loads digits."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import sys
import modipick.loadgen.cli, modipick.loadgen.commands, modipick.loadgen.experiment, modipick.loadgen.link
import modipick.loadgen.report, modipick.loadgen.plots, modipick.loadgen.trivial
from modipick.loadgen.datasets import DigitsSource
DigitsSource()
bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))
print(bad)
sys.exit(1 if bad else 0)
"""


def test_loadgen_does_not_import_tensorflow():
    done = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
