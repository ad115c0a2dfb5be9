"""A throwaway PKI for the reliability rig, made with the openssl CLI: one CA, a server
certificate every service (and Redis) presents, a client certificate every caller presents, and a
second CA's client certificate that must be refused."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class Pki:
    ca: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str
    stranger_cert: str  # signed by another CA
    stranger_key: str
    stranger_ca: str

    def server_flags(self) -> list[str]:
        """A service's own TLS with client certificates required (mutual TLS)."""
        return ["--tls-cert", self.server_cert, "--tls-key", self.server_key, "--tls-client-ca", self.ca]

    def downstream_flags(self) -> list[str]:
        return ["--downstream-ca", self.ca, "--downstream-cert", self.client_cert,
                "--downstream-key", self.client_key]

    def server_tls(self):
        from modipick.runtime.tls import TlsConfig

        return TlsConfig(self.server_cert, self.server_key, self.ca)

    def client_tls(self):
        from modipick.runtime.tls import TlsConfig

        return TlsConfig(self.client_cert, self.client_key, self.ca)

    def channel_credentials(self, *, cert: bool = True, stranger: bool = False):
        import grpc

        read = lambda p: Path(p).read_bytes()  # noqa: E731
        if stranger:
            return grpc.ssl_channel_credentials(read(self.ca), read(self.stranger_key), read(self.stranger_cert))
        if not cert:
            return grpc.ssl_channel_credentials(read(self.ca))
        return grpc.ssl_channel_credentials(read(self.ca), read(self.client_key), read(self.client_cert))


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _ca(cwd: Path, name: str, subject: str) -> None:
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.crt",
             "-days", "2", "-subj", subject, cwd=cwd)


def _signed(cwd: Path, ca: str, name: str, subject: str, ext: str) -> None:
    (cwd / f"{name}.ext").write_text(ext)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
             "-subj", subject, cwd=cwd)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key", "-CAcreateserial",
             "-days", "2", "-out", f"{name}.crt", "-extfile", f"{name}.ext", cwd=cwd)


def make_pki(directory: Path) -> Pki:
    if shutil.which("openssl") is None:
        pytest.fail("the TLS tests need the openssl CLI (apt-get install openssl)")
    directory.mkdir(parents=True, exist_ok=True)
    _ca(directory, "ca", "/CN=modipick reliability CA")
    _ca(directory, "other-ca", "/CN=someone else's CA")
    both = "extendedKeyUsage=serverAuth,clientAuth\n"
    _signed(directory, "ca", "server", "/CN=localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1\n" + both)
    _signed(directory, "ca", "client", "/CN=modipick-service", "extendedKeyUsage=clientAuth\n")
    _signed(directory, "other-ca", "stranger", "/CN=stranger", "extendedKeyUsage=clientAuth\n")
    p = lambda name: str(directory / name)  # noqa: E731
    return Pki(p("ca.crt"), p("server.crt"), p("server.key"), p("client.crt"), p("client.key"),
               p("stranger.crt"), p("stranger.key"), p("other-ca.crt"))
