"""TLS and mutual TLS for every gRPC hop, as one value object per side."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc


def _read(path: str | None) -> bytes | None:
    return Path(path).read_bytes() if path else None


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """Server side: cert+key, and a client CA to require client certificates (mTLS).
    Client side: the CA to trust, and cert+key to present (mTLS)."""

    cert_file: str | None = None
    key_file: str | None = None
    ca_file: str | None = None
    server_name_override: str | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.cert_file or self.ca_file)

    def server_credentials(self) -> grpc.ServerCredentials:
        if not (self.cert_file and self.key_file):
            raise ValueError("a TLS server needs both a certificate and a key file")
        pair = [(_read(self.key_file), _read(self.cert_file))]
        client_ca = _read(self.ca_file)
        return grpc.ssl_server_credentials(pair, root_certificates=client_ca,
                                           require_client_auth=client_ca is not None)

    def channel_credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(root_certificates=_read(self.ca_file),
                                            private_key=_read(self.key_file),
                                            certificate_chain=_read(self.cert_file))

    def channel_options(self) -> list[tuple[str, str]]:
        if self.server_name_override:
            return [("grpc.ssl_target_name_override", self.server_name_override)]
        return []
