"""`modipick up` on a real machine: Redis mode (three service processes) and the in-memory
fallback (Profiler and Selector in the `up` process), serving real digits, stopped by SIGTERM."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest

from suite_support import serving

from modipick.client import ModiPickClient
from modipick.zoo.manifest import read_manifest

UP = [sys.executable, "-c", "import sys; from modipick.cli import main; sys.exit(main(sys.argv[1:]))", "up"]


def _read_until_up(proc: subprocess.Popen, timeout_s: float) -> dict[str, str]:
    """The `modipick is up:` block from stdout -> {"selector": target, ...} (a reader thread: a
    select() on the pipe would miss lines already buffered by the text wrapper)."""
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    targets: dict[str, str] = {}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and len(targets) < 5:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            assert proc.poll() is None, f"modipick up exited {proc.returncode}"
            continue
        words = line.split()
        if len(words) >= 2 and words[0] in ("selector", "executor", "profiler", "profiles"):
            targets[words[0]] = words[1] if words[0] != "profiles" else line.strip()
        elif "Unix socket" in line:
            targets["socket"] = words[0]
    assert len(targets) == 5, targets
    return targets


def _unix_sockets_at(path: str) -> int:
    """Sockets bound to `path` (the listener and each accepted connection), from /proc/net/unix."""
    with open("/proc/net/unix") as table:
        return sum(1 for row in table if row.split()[-1] == path)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["redis", "memory"])
def test_up_serves_and_stops_on_sigterm(mode, redis_url, digits_pool, digits, tmp_path):
    images, labels = digits
    store = redis_url if mode == "redis" else "memory"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODIPICK_")}
    with open(tmp_path / "up.log", "w") as log:
        proc = subprocess.Popen([*UP, "--redis-url", store, "--model-base", str(digits_pool), "--selector-port", "0",
                                 "--executor-port", "0", "--profiler-port", "0", "--log-level", "warning"],
                                stdout=subprocess.PIPE, stderr=log, text=True, env=env)
    try:
        targets = _read_until_up(proc, 180)
        assert ("Redis at" in targets["profiles"]) == (mode == "redis")
        assert ("in-memory" in targets["profiles"]) == (mode == "memory")
        deadline = time.monotonic() + 120
        with ModiPickClient(targets["selector"]) as client:
            client.wait_ready()
            while True:  # until the Profiler has warmed the models up
                try:
                    result = client.infer(images[0], 1000, label=int(labels[0]))
                    break
                except Exception:
                    assert time.monotonic() < deadline, (tmp_path / "up.log").read_text()[-3000:]
                    time.sleep(0.5)
            assert 0 <= result.label <= 9 and result.model in {m.name for m in read_manifest(digits_pool).models}
        # the Selector reaches the Executor through its Unix socket: a listener and a connection
        assert _unix_sockets_at(targets["socket"]) >= 2, targets["socket"]
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
    assert code == 0, (tmp_path / "up.log").read_text()[-3000:]
    for name in ("selector", "executor", "profiler"):
        assert not serving(targets[name]), f"{name} still serving after SIGTERM"
    assert not os.path.exists(targets["socket"])
