"""Flags with `MODIPICK_*` environment defaults. Read only inside main(): `environ` is passed in,
never read at import time."""

from __future__ import annotations

import argparse
import functools
import os
import re
from typing import Any, Mapping

ENV_PREFIX = "MODIPICK_"


def env_name(flag: str) -> str:
    return ENV_PREFIX + flag.lstrip("-").replace("-", "_").upper()


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")
_ENV_ACTIONS = (None, "store", "store_true", argparse.BooleanOptionalAction)


class EnvArgumentParser(argparse.ArgumentParser):
    """argparse where every option's default may come from MODIPICK_<OPTION>; bad values exit 2
    with a message naming the flag and its environment variable.

    `add_option` declares such an option; with `env_all=True` every optional `add_argument` does
    too (except repeatable and required ones), and subcommand parsers inherit both settings."""

    def __init__(self, *args: Any, environ: Mapping[str, str] | None = None, env_all: bool = False,
                 **kwargs: Any) -> None:
        self._environ = os.environ if environ is None else environ
        self._env_all = env_all
        self._env_errors: list[str] = []  # reported when this parser (this subcommand) is used
        super().__init__(*args, **kwargs)

    def parse_known_args(self, args: Any = None, namespace: Any = None):
        if self._env_errors:
            self.error(self._env_errors[0])
        return super().parse_known_args(args, namespace)

    def error(self, message: str):  # one line, exit 2 (argparse prints the whole usage)
        self.exit(2, f"{self.prog}: error: {message}\n")

    def add_subparsers(self, **kwargs: Any):
        kwargs.setdefault("parser_class", functools.partial(EnvArgumentParser, environ=self._environ,
                                                            env_all=self._env_all))
        return super().add_subparsers(**kwargs)

    def add_argument(self, *names: Any, **kwargs: Any):
        if self._wants_env(names, kwargs):
            return super().add_argument(*names, **self._env_kwargs(names, kwargs))
        return super().add_argument(*names, **kwargs)

    def add_argument_group(self, *args: Any, **kwargs: Any):
        group = super().add_argument_group(*args, **kwargs)
        plain = group.add_argument

        def add_argument(*names: Any, **options: Any):
            if self._wants_env(names, options):
                return plain(*names, **self._env_kwargs(names, options))
            return plain(*names, **options)

        group.add_argument = add_argument  # type: ignore[method-assign]
        return group

    def add_option(self, flag: str, *aliases: str, **kwargs: Any):
        """An option whose default may come from the environment: MODIPICK_<FLAG>, or `env=NAME`;
        `secret=True` keeps the value out of help and error messages."""
        return super().add_argument(flag, *aliases, **self._env_kwargs((flag, *aliases), kwargs))

    def _wants_env(self, names: tuple, kwargs: Mapping[str, Any]) -> bool:
        long = next((n for n in names if isinstance(n, str) and n.startswith("--")), None)
        return (self._env_all and long is not None and long not in ("--help", "--version")
                and not kwargs.get("required") and kwargs.get("action") in _ENV_ACTIONS)

    def _env_kwargs(self, names: tuple, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        options = dict(kwargs)
        flag = next(n for n in names if n.startswith("--"))
        secret = options.pop("secret", False)
        name = options.pop("env", None) or env_name(flag)
        default = options.get("default")
        action = options.get("action")
        boolean = action in ("store_true", argparse.BooleanOptionalAction)
        if action == "store_true" and default is None:
            default = False
        raw = self._environ.get(name)
        if raw is not None and boolean:
            if raw.strip().lower() not in _TRUE + _FALSE:
                self._env_errors.append(f"{name}={raw!r}: expected one of {', '.join(_TRUE + _FALSE[:-1])}")
            default = raw.strip().lower() in _TRUE
        elif raw is not None:
            try:
                default = (options.get("type") or str)(raw)
            except (TypeError, ValueError, argparse.ArgumentTypeError) as exc:
                reason = str(exc).replace("could not convert string to float: ", "not a number: ")
                reason = reason.replace("invalid literal for int() with base 10: ", "not an integer: ")
                self._env_errors.append(f"{name}={'***' if secret else raw!r}: {reason}")
            choices = options.get("choices")
            if choices is not None and default not in choices and not self._env_errors:
                self._env_errors.append(f"{name}={raw!r}: invalid choice (choose from "
                                        f"{', '.join(map(str, choices))})")
        options["default"] = default
        help_text = options.get("help") or ""
        if help_text != argparse.SUPPRESS:
            shown = ("(set)" if default else "None") if secret else "%(default)s"
            options["help"] = f"{_without_default(help_text, default)} [env {name}; default {shown}]"
        return options


def _without_default(help_text: str, default: Any) -> str:
    """The help without a trailing '[default]' or '(default)' of its own (the env suffix states it)."""
    text = re.sub(r"\s*\[[^\[\]]*\]\s*$", "", help_text).strip()
    match = re.search(r"\s*\(([^()]*)\)\s*$", text)
    own = (str(default), f"{default:g}" if isinstance(default, float) else "")
    if match and match.group(1).replace(",", "") in own:
        text = text[:match.start()].rstrip()
    return text


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
