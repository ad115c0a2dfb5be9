"""The exec probe the prod overlay uses on servers with mutual TLS (Kubernetes' native gRPC probes
speak plaintext only): `python -m modipick.runtime.healthcheck --tls-dir DIR --server-name NAME`
against a real mTLS server, with certificates in the layout cert-manager writes (ca.crt, tls.crt,
tls.key) and a SAN that is a Service name, not the probed 127.0.0.1."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from modipick.runtime.server import ServerOptions, start_server
from modipick.runtime.tls import TlsConfig


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def secret_dir(tmp_path_factory) -> Path:
    """A CA and one certificate for DNS:selector (server and client auth), as in a cert-manager Secret."""
    if shutil.which("openssl") is None:
        pytest.fail("this test needs the openssl CLI (apt-get install openssl)")
    work = tmp_path_factory.mktemp("pki")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
            "-subj", "/CN=modipick-ca", cwd=work)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "tls.key", "-out", "tls.csr", "-subj", "/CN=selector",
            cwd=work)
    (work / "ext").write_text("subjectAltName=DNS:selector,DNS:selector-headless\n"
                              "extendedKeyUsage=serverAuth,clientAuth\n")
    openssl("x509", "-req", "-in", "tls.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
            "-out", "tls.crt", "-extfile", "ext", cwd=work)
    secret = work / "secret"
    secret.mkdir()
    for name in ("ca.crt", "tls.crt", "tls.key"):
        shutil.copy(work / name, secret / name)
    return secret


def probe(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "modipick.runtime.healthcheck", *args],
                          capture_output=True, text=True, timeout=60)


async def probe_results(secret: Path) -> dict[str, subprocess.CompletedProcess]:
    tls = TlsConfig(str(secret / "tls.crt"), str(secret / "tls.key"), str(secret / "ca.crt"))
    running = await start_server([], [], ServerOptions(tls=tls))
    try:
        target = running.target
        runs = {
            "mtls": ("--tls-dir", str(secret), "--server-name", "selector", target),
            "plaintext": (target,),
            "wrong name": ("--tls-dir", str(secret), "--server-name", "profiler", target),
        }
        return {name: await asyncio.to_thread(probe, *args) for name, args in runs.items()}
    finally:
        await running.stop(0)


def test_the_tls_probe_passes_only_with_the_pods_own_certificate(secret_dir: Path) -> None:
    results = asyncio.run(probe_results(secret_dir))
    assert results["mtls"].returncode == 0 and "SERVING" in results["mtls"].stdout, results["mtls"].stderr
    assert results["plaintext"].returncode == 1, results["plaintext"]
    assert results["wrong name"].returncode == 1, results["wrong name"]


def test_missing_tls_files_are_reported_not_raised(tmp_path: Path) -> None:
    done = probe("--tls-dir", str(tmp_path), "127.0.0.1:1")
    assert done.returncode == 1 and "cannot read the TLS files" in done.stderr and "Traceback" not in done.stderr
    usage = probe()
    assert usage.returncode == 2 and "HOST:PORT" in usage.stderr
