"""`modipick infer IMAGE --sla 150 [--target HOST:PORT] [--label N] [--policy NAME] [--json]`

IMAGE is a PNG or JPEG file (sent as is), or a .npy array holding one image.
Exit codes: 0 served or run-on-device answer, 1 the call failed, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any, Mapping

from modipick.client.errors import InvalidRequest, ModiPickError
from modipick.client.inputs import image_kind
from modipick.client.options import DEFAULT_TARGET, ClientOptions, ClientTls, check_sla


class _Parser(argparse.ArgumentParser):
    """The services' environment-aware parser, in the client's own terms (the SDK installs without
    the services): `option` takes its default from an environment variable named in the help, and
    a bad value there exits 2 naming the variable, like a bad flag."""

    def __init__(self, *args: Any, environ: Mapping[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._environ = environ
        self._env_errors: list[str] = []

    def error(self, message: str) -> None:  # type: ignore[override]  # one line, exit 2
        print(f"{self.prog}: {message}", file=sys.stderr)
        raise SystemExit(2)

    def parse_known_args(self, args: Any = None, namespace: Any = None):  # type: ignore[override]
        if self._env_errors:
            self.error(self._env_errors[0])
        return super().parse_known_args(args, namespace)

    def option(self, flag: str, env: str, *, default: Any = None, type: Any = str, help: str = "",
               **kwargs: Any) -> None:
        raw = self._environ.get(env)
        if raw is not None:
            try:
                default = type(raw)
            except (TypeError, ValueError, argparse.ArgumentTypeError) as exc:
                self._env_errors.append(f"{env}={raw!r}: {exc}")
        self.add_argument(flag, default=default, type=type, help=f"{help} [env {env}; default %(default)s]", **kwargs)


def _number(kind: type) -> Any:
    def parse(text: str) -> Any:
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    return parse


def _parser(environ: Mapping[str, str]) -> _Parser:
    p = _Parser(prog="modipick infer", description="Send one image through a modipick Selector.", environ=environ)
    p.add_argument("image", help="PNG/JPEG file, or .npy array of one image")
    p.option("--sla", "MODIPICK_SLA_MS", type=_number(float), default=150.0, help="SLA in ms")
    p.option("--target", "MODIPICK_SELECTOR_TARGET", default=DEFAULT_TARGET, help="Selector address")
    p.add_argument("--label", type=_number(int), default=None, help="true label: report the outcome")
    p.add_argument("--policy", default="", help="override the Selector's policy for this request")
    p.option("--tls-ca", "MODIPICK_TLS_CA", help="CA file to trust (enables TLS)")
    p.option("--tls-cert", "MODIPICK_TLS_CERT", help="client certificate (mTLS)")
    p.option("--tls-key", "MODIPICK_TLS_KEY", help="client key (mTLS)")
    p.option("--token", "MODIPICK_TOKEN", default="",
             help="bearer token (a JWT) where the Selector authenticates clients; it names the client")
    p.option("--connect-timeout", "MODIPICK_CONNECT_TIMEOUT_S", type=_number(float), default=10.0,
             help="seconds to wait for the connection (not counted against the SLA)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    return p


def load_image(path: str) -> Any:
    """Bytes of a PNG/JPEG file or the array in a .npy file; ValueError naming the file otherwise."""
    file = Path(path)
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if file.suffix.lower() == ".npy":
        import io

        import numpy as np
        try:
            return np.load(io.BytesIO(data), allow_pickle=False)
        except ValueError as exc:
            raise ValueError(f"{path}: not a valid .npy array ({exc})") from None
    if not data:
        raise ValueError(f"{path}: file is empty")
    if image_kind(data) is None:
        raise ValueError(f"{path}: not a PNG or JPEG image")
    return data


def main(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    args = _parser(os.environ if environ is None else environ).parse_args(argv)
    try:
        check_sla(args.sla)
        image = load_image(args.image)
    except InvalidRequest as exc:
        print(f"modipick infer: --sla: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"modipick infer: {exc}", file=sys.stderr)
        return 2
    tls = ClientTls(args.tls_ca, args.tls_cert, args.tls_key) if args.tls_ca else None
    from modipick.client.sync import ModiPickClient

    with ModiPickClient(options=ClientOptions(target=args.target, tls=tls, token=args.token)) as client:
        try:
            client.wait_ready(args.connect_timeout)
            result = client.infer(image, args.sla, policy=args.policy or None, label=args.label)
        except InvalidRequest as exc:
            print(f"modipick infer: {exc}", file=sys.stderr)
            return 2
        except ModiPickError as exc:
            print(f"modipick infer: {args.target}: {exc}", file=sys.stderr)
            return 1
    if args.json:
        doc = asdict(result)
        doc.pop("outcome_ticket")  # for ReportOutcome, not for people
        doc["met_sla"] = result.met_sla
        print(json.dumps(doc))
    elif result.run_on_device:
        print(f"run on device: no model fits {args.sla:g} ms (budget {result.timings.budget_ms:.1f} ms), "
              f"e2e {result.e2e_ms:.1f} ms")
    else:
        name = f" ({result.label_name})" if result.label_name and result.label_name != str(result.label) else ""
        print(f"prediction {result.label}{name} score {result.score:.3f} | model {result.model}:{result.version} "
              f"[{result.reason}] | e2e {result.e2e_ms:.1f} ms of SLA {args.sla:g} ms "
              f"(budget {result.timings.budget_ms:.1f}, queue {result.timings.queue_ms:.1f}, "
              f"run {result.timings.execution_ms:.1f}, server {result.timings.server_ms:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
