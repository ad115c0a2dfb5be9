"""Flags with `MODIPICK_*` environment defaults. Read only inside main(): `environ` is passed in,
never read at import time."""

from __future__ import annotations

import argparse
import os
from typing import Any, Callable, Mapping

ENV_PREFIX = "MODIPICK_"


def env_name(flag: str) -> str:
    return ENV_PREFIX + flag.lstrip("-").replace("-", "_").upper()


class EnvArgumentParser(argparse.ArgumentParser):
    """argparse where every option's default may come from MODIPICK_<OPTION>; bad values exit 2
    with a message naming the flag and its environment variable."""

    def __init__(self, *args: Any, environ: Mapping[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._environ = os.environ if environ is None else environ

    def error(self, message: str):  # one line, exit 2 (argparse prints the whole usage)
        self.exit(2, f"{self.prog}: error: {message}\n")

    def add_option(self, flag: str, *, default: Any = None, type: Callable[[str], Any] = str,
                   help: str = "", secret: bool = False, **kwargs: Any) -> None:
        name = env_name(flag)
        raw = self._environ.get(name)
        if raw is not None and kwargs.get("action") is None:
            try:
                default = type(raw)
            except (TypeError, ValueError, argparse.ArgumentTypeError) as exc:
                self.error(f"{name}={'***' if secret else raw!r}: {exc}")
        elif raw is not None and kwargs.get("action") == "store_true":
            default = raw.strip().lower() in ("1", "true", "yes", "on")
        shown = "(set)" if secret and default else default
        help_text = f"{help} [env {name}; default {shown}]"
        if kwargs.get("action") == "store_true":
            self.add_argument(flag, default=default, help=help_text, **kwargs)
        else:
            self.add_argument(flag, default=default, type=type, help=help_text, **kwargs)


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text!r}")
    return value


def probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a probability in [0, 1], got {text!r}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def read_secret(value: str | None) -> str | None:
    """A secret given directly, or as `file:/path` (Kubernetes secret volumes)."""
    if value and value.startswith("file:"):
        with open(value[5:], encoding="utf-8") as fh:
            return fh.read().strip()
    return value or None


def add_tls_options(parser: "EnvArgumentParser") -> None:
    """Server TLS (cert/key; a client CA turns on mutual TLS) and the TLS used for outgoing calls."""
    parser.add_option("--tls-cert", help="server certificate (PEM); enables TLS")
    parser.add_option("--tls-key", help="server private key (PEM)")
    parser.add_option("--tls-client-ca", help="CA for client certificates; enables mutual TLS")
    parser.add_option("--upstream-ca", help="CA that signs the servers this one calls")
    parser.add_option("--upstream-cert", help="client certificate presented to servers this one calls (mTLS)")
    parser.add_option("--upstream-key", help="client key for --upstream-cert")
    parser.add_option("--upstream-server-name", help="TLS name to expect from the servers this one calls")


def tls_configs(args: argparse.Namespace):
    """(server TlsConfig | None, client TlsConfig | None) from add_tls_options' flags."""
    from modipick.runtime.tls import TlsConfig

    server = None
    if args.tls_cert or args.tls_key:
        if not (args.tls_cert and args.tls_key):
            raise SystemExit("modipick: --tls-cert and --tls-key go together")
        server = TlsConfig(cert_file=args.tls_cert, key_file=args.tls_key, ca_file=args.tls_client_ca)
    client = None
    if args.upstream_ca or args.upstream_cert:
        client = TlsConfig(cert_file=args.upstream_cert, key_file=args.upstream_key, ca_file=args.upstream_ca,
                           server_name_override=args.upstream_server_name)
    return server, client
