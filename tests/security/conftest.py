"""A locked-down suite for the attack tests: a real Executor process (embedded TensorFlow, the
digits pool) that reports with its service token, a Profiler that takes observations only from
Executors and outcomes only from Selectors and bounds each client's labels, and a Selector that
authenticates clients (JWTs: an HS256 secret and an RS256 public key), signs outcome tickets and
rate-limits reports; real Redis (its own logical database), real gRPC on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from fixtures_suite import LoopThread, _wait_serving, free_port, wait_until, with_db
from security_support import (ADMIN_TOKEN, AUDIENCE, EXECUTOR_TOKEN, ISSUER, JWT_SECRET, MAX_SHIFT_PCT,
                              REPORT_BURST, REPORT_RATE, SECURE_DB, SELECTOR_TOKEN, TICKET_KEYS)

@dataclass
class SecureSuite:
    loop: LoopThread
    redis_url: str
    store: object
    profiler: object
    selector: object
    executor_target: str
    rsa_private_pem: bytes
    models: list[str]
    extra: list = field(default_factory=list)

    def profiles(self) -> dict[str, object]:
        return {p.name: p for p in self.store.load_all()}


def _rsa_pair(directory: Path) -> tuple[bytes, Path]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = directory / "jwt-rs256.pub.pem"
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


@pytest.fixture(scope="module")
def secure_suite(redis_server, digits_pool, request, tmp_path_factory):
    import redis

    from modipick.profiler.accuracy import AccuracyBounds
    from modipick.profiler.app import ProfilerSettings, start_profiler
    from modipick.profiler.lifecycle import LifecycleSettings
    from modipick.runtime.identity import JwtSettings, ServiceCredentials
    from modipick.runtime.identity_interceptors import ClientAuthSettings
    from modipick.selector.app import SelectorSettings, start_selector
    from modipick.selector.report_limits import ReportLimits
    from modipick.selector.tickets import TicketKeys
    from modipick.stores import make_store
    from modipick.zoo.manifest import read_manifest

    url = with_db(request.config.getoption("--redis-url") or redis_server.url, SECURE_DB)
    redis.Redis.from_url(url).flushdb()
    store = make_store(url)
    workdir = tmp_path_factory.mktemp("secure")
    private_pem, public_file = _rsa_pair(workdir)
    executor_target = f"127.0.0.1:{free_port()}"
    loop = LoopThread()
    profiler = loop.run(start_profiler(ProfilerSettings(
        store_url=url, executor_target=executor_target, admin_token=ADMIN_TOKEN,
        service_credentials=ServiceCredentials(tokens={"executor": EXECUTOR_TOKEN, "selector": SELECTOR_TOKEN}),
        accuracy=AccuracyBounds(max_shift_pct=MAX_SHIFT_PCT),
        lifecycle=LifecycleSettings(warmup_runs=2, probe_runs=5, reprobe_after_s=3600, discovery_interval_s=0.3))))
    log = workdir / "executor.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODIPICK_")}
    env.update(TF_CPP_MIN_LOG_LEVEL="2", MODIPICK_SERVICE_TOKEN=EXECUTOR_TOKEN)  # the env-aware flag
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", "import sys; from modipick.cli import main; sys.exit(main(sys.argv[1:]))",
             "executor", "--listen", executor_target, "--model-base", str(digits_pool),
             "--profiler-target", profiler.target, "--log-json"],
            stdout=out, stderr=subprocess.STDOUT, env=env)
    selector = suite = None
    try:
        _wait_serving(executor_target, 180, proc, log)
        selector = loop.run(start_selector(SelectorSettings(
            store_url=url, executor_target=executor_target, profiler_target=profiler.target, refresh_ms=100.0,
            client_auth=ClientAuthSettings(mode="required", jwt=JwtSettings(
                hs256_secrets=(JWT_SECRET,), public_key_files=(str(public_file),), issuer=ISSUER, audience=AUDIENCE)),
            ticket_keys=TicketKeys("k2", TICKET_KEYS["k2"], "k1", TICKET_KEYS["k1"]),
            report_limits=ReportLimits(rate_per_s=REPORT_RATE, burst=REPORT_BURST),
            service_token=SELECTOR_TOKEN)))
        models = [m.name for m in read_manifest(digits_pool).models]
        suite = SecureSuite(loop, url, store, profiler, selector, executor_target, private_pem, models)
        deadline = time.monotonic() + 240
        while not all(p.state == "eligible" for p in suite.profiles().values()) or len(suite.profiles()) < len(models):
            assert time.monotonic() < deadline, f"models not eligible: {suite.profiles()}\n{log.read_text()[-3000:]}"
            time.sleep(0.2)
        # the Selector reads the store every 100 ms: until it has, a request finds the models warming
        wait_until(lambda: set(models) <= {c.name for c in selector.cache.snapshot.candidates}, timeout_s=30,
                   what="the Selector's copy shows the models eligible")
        yield suite
    finally:
        for app in [*(suite.extra if suite else []), selector, profiler]:
            if app is not None:
                loop.run(app.stop(0.5))
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        loop.close()
        store.close()
