"""Profile updates into Redis: observations/s through the Lua EWMA, and proof that none were lost.

    python -m benchmarks.profile_updates [--writers 1,4,8] [--batch 1,100,1000] [--observations 200000]

Starts its own redis-server on a free port (no persistence), registers --models profiles, and for each
(writers, batch size) runs that many writer processes that all start together and send batches of
pre-generated observations to the same profiles. Throughput = observations / (last writer done - start).
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from modipick.core import ModelProfile
from modipick.stores import make_store

TARGET_OBS_PER_S = 20_000
ALPHA = 0.1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis(workdir: str) -> tuple[subprocess.Popen, str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is missing: install it (apt-get install redis-server)")
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", workdir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.02)
    proc.kill()
    raise SystemExit(f"redis-server did not start on port {port}")


def writer(url: str, namespace: str, models: list[tuple[str, int]], seed: int, count: int, batch: int,
           start, results) -> None:
    rng = random.Random(seed)
    batches = [[(*rng.choice(models), rng.lognormvariate(3.0, 0.5)) for _ in range(min(batch, count - i))]
               for i in range(0, count, batch)]
    store = make_store(url, namespace=namespace)
    store.load_all()  # connect and load the scripts before the clock starts
    start.wait(timeout=120)
    began = time.monotonic()
    accepted = sum(store.observe_many(b, alpha=ALPHA) for b in batches)
    results.put((began, time.monotonic(), accepted))
    store.close()


def run(url: str, namespace: str, models: list[tuple[str, int]], writers: int, batch: int, total: int) -> dict:
    store = make_store(url, namespace=namespace)
    for name, version in models:
        store.register(ModelProfile(name=name, version=version, declared_accuracy=50.0))
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Barrier(writers), ctx.Queue()
    per_writer = total // writers
    procs = [ctx.Process(target=writer, args=(url, namespace, models, seed, per_writer, batch, start, results))
             for seed in range(writers)]
    for proc in procs:
        proc.start()
    reports = [results.get(timeout=600) for _ in procs]
    for proc in procs:
        proc.join()
    elapsed = max(end for _, end, _ in reports) - min(began for began, _, _ in reports)
    sent = per_writer * writers
    stored = sum(p.samples for p in store.load_all())
    store.close()
    return {"writers": writers, "batch": batch, "sent": sent, "accepted": sum(a for _, _, a in reports),
            "stored": stored, "seconds": elapsed, "obs_per_s": sent / elapsed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", default="1,4,8", help="comma-separated writer process counts")
    parser.add_argument("--batch", default="1,100,1000", help="comma-separated observations per Lua call")
    parser.add_argument("--observations", type=int, default=200_000, help="per run (batch 1 runs send 1/10)")
    parser.add_argument("--models", type=int, default=12)
    args = parser.parse_args(argv)
    writer_counts = [int(v) for v in args.writers.split(",")]
    batch_sizes = [int(v) for v in args.batch.split(",")]
    models = [(f"model-{i}", 1) for i in range(args.models)]
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        proc, url = start_redis(workdir)
        try:
            runs = [(w, b) for b in batch_sizes for w in writer_counts]
            for index, (writers, batch) in enumerate(runs):
                print(f"\r[{index + 1}/{len(runs)}] writers={writers} batch={batch} ...", end="", file=sys.stderr,
                      flush=True)
                total = args.observations // 10 if batch == 1 else args.observations
                rows.append(run(url, f"bench{index}", models, writers, batch, total))
        finally:
            proc.kill()
            proc.wait()
    print(file=sys.stderr)
    print(f"{'writers':>7} {'batch':>6} {'sent':>8} {'stored':>8} {'lost':>5} {'seconds':>8} {'obs/s':>10}")
    for r in rows:
        print(f"{r['writers']:>7} {r['batch']:>6} {r['sent']:>8} {r['stored']:>8} {r['sent'] - r['stored']:>5} "
              f"{r['seconds']:>8.2f} {r['obs_per_s']:>10,.0f}")
    lost = sum(r["sent"] - r["stored"] for r in rows)
    best = max(r["obs_per_s"] for r in rows)
    print(f"lost updates: {lost}; best {best:,.0f} obs/s (target >= {TARGET_OBS_PER_S:,}): "
          f"{'PASS' if lost == 0 and best >= TARGET_OBS_PER_S else 'FAIL'}")
    return 0 if lost == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
