"""What the SDK adds before sending a photo: choosing the input size (modipick.core.uploads with
risk_aware, the packaged sized models, the JPEG ladder of the simulator, 48 remembered uploads, the
planner's ValueMemo kept between requests), resizing the photo to 224 px and JPEG-encoding it.
p50/p99 in ms, each part and the whole; the choice without a memo is timed beside it.

    python -m benchmarks.sdk_upload_overhead [--requests 2000] [--tflite FILE]

The photo is scikit-learn's flower (640x427 JPEG decoded once beforehand, as an app holds the
camera frame). Baseline, measured in the same run: JPEG-encoding the already 224 px image alone,
the part no SDK can avoid; the whole is printed as a ratio to it. The whole is also timed in
process CPU time, which a host busy with other work inflates less than wall time. Bandwidths are drawn so the
choice spans the ladder. With --tflite, also this machine's LiteRT time of that model (one thread),
the host time a DeviceProfile's slowdown multiplies.
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import sys
import time

TARGET_P50_MS = 2.0


def percentile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sdk_upload_overhead",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--tflite", default=None, help="a .tflite to time on LiteRT as well")
    args = parser.parse_args(argv)
    if args.requests < 10:
        print("--requests must be >= 10", file=sys.stderr)
        return 2

    from PIL import Image

    from modipick.client.uploads import encode_jpeg, resize_square, to_pil
    from modipick.core import make_policy
    from modipick.core.uploads import BandwidthEstimate, DeviceFallback, ValueMemo, choose_upload
    from modipick.sim.payloads import measure_ladder, sample_photos
    from modipick.sim.uploadsim import build_menu, load_sized_models

    photo = to_pil(sample_photos()[1])
    small = resize_square(photo, 224)
    menu = build_menu(load_sized_models("sized"), measure_ladder((96, 128, 160, 192, 224, 299, 331), 90), 224)
    policy = make_policy("risk_aware")
    device = DeviceFallback(49.8, 150.0)
    rng = random.Random(1)
    estimates = []
    bw = BandwidthEstimate()
    for _ in range(64 + bw.history):  # one client's link drifting over the run
        bw = bw.observe(15_000, rng.uniform(20.0, 400.0))
        estimates.append(bw)
    estimates = estimates[bw.history:]
    memo = ValueMemo()

    choose_ms, resize_ms, encode_ms, total_ms, base_ms, sizes = [], [], [], [], [], {}
    cpu_total_ms, cold_ms = [], []
    for i in range(args.requests + 50):
        bw, sla = estimates[i % len(estimates)], rng.choice((100.0, 150.0, 200.0, 300.0, 500.0))
        c0 = time.process_time()
        t0 = time.perf_counter()
        choice = choose_upload(menu, bw, sla, policy, return_ms=20.0, device=device, memo=memo)
        t1 = time.perf_counter()
        img = resize_square(photo, 224)
        t2 = time.perf_counter()
        encode_jpeg(img, 0)
        t3 = time.perf_counter()
        c3 = time.process_time()
        encode_jpeg(small, 0)
        t4 = time.perf_counter()
        choose_upload(menu, bw, sla, policy, return_ms=20.0, device=device)
        t5 = time.perf_counter()
        if i >= 50:  # warm-up excluded
            choose_ms.append((t1 - t0) * 1e3)
            resize_ms.append((t2 - t1) * 1e3)
            encode_ms.append((t3 - t2) * 1e3)
            total_ms.append((t3 - t0) * 1e3)
            cpu_total_ms.append((c3 - c0) * 1e3)
            base_ms.append((t4 - t3) * 1e3)
            cold_ms.append((t5 - t4) * 1e3)
            sizes[choice.variant.input_size] = sizes.get(choice.variant.input_size, 0) + 1

    print(f"sdk_upload_overhead: {args.requests} requests, python {platform.python_version()}, "
          f"Pillow {Image.__version__}, {platform.machine()}")
    print(f"sizes chosen: {dict(sorted(sizes.items()))}")
    print(f"{'part':<34}{'p50 ms':>9}{'p99 ms':>9}")
    for name, xs in (("choose (8 variants x 48 uploads)", choose_ms), ("choose without a memo", cold_ms),
                     ("resize 640x427 -> 224x224", resize_ms),
                     ("JPEG encode 224 px (q90)", encode_ms), ("whole: choose + resize + encode", total_ms),
                     ("whole, process CPU time", cpu_total_ms), ("baseline: JPEG encode alone", base_ms)):
        print(f"{name:<34}{statistics.median(xs):>9.3f}{percentile(xs, 0.99):>9.3f}")
    p50 = statistics.median(total_ms)
    print(f"whole / baseline (p50): {p50 / statistics.median(base_ms):.1f}x; "
          f"target p50 <= {TARGET_P50_MS:g} ms: {'met' if p50 <= TARGET_P50_MS else 'NOT met'}")

    if args.tflite:
        from modipick.client.ondevice import DeviceProfile, LiteRTRunner

        runner = LiteRTRunner(args.tflite, accuracy=0.0, profile=DeviceProfile("this machine", 1.0))
        batches = sorted(runner.calibrate(20) for _ in range(10))
        print(f"LiteRT {args.tflite.rsplit('/', 1)[-1]}: median of 20 runs, 10 batches: best {batches[0]:.2f} ms, "
              f"median {statistics.median(batches):.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
