"""`python -m modipick.runtime.healthcheck [--tls-dir DIR [--server-name NAME]] HOST:PORT [SERVICE]`:
exit 0 when SERVING (container probes).

--tls-dir names a directory in the layout of a Kubernetes TLS Secret (as cert-manager writes it):
ca.crt (trusted for the server), tls.crt and tls.key (presented as the client certificate, for a
server that requires mutual TLS). Kubernetes' native gRPC probes speak plaintext only, so a server
with TLS is probed this way (an exec probe), with --server-name the name its certificate carries.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m modipick.runtime.healthcheck",
                                     description="exit 0 when the gRPC health of HOST:PORT [SERVICE] is SERVING")
    parser.add_argument("--tls-dir", type=Path, help="directory with ca.crt, tls.crt and tls.key: probe over TLS")
    parser.add_argument("--server-name", help="name to expect in the server's certificate (default: HOST)")
    parser.add_argument("target", metavar="HOST:PORT")
    parser.add_argument("service", nargs="?", default="", metavar="SERVICE")
    return parser


def _channel(args: argparse.Namespace) -> grpc.Channel:
    if args.tls_dir is None:
        return grpc.insecure_channel(args.target)
    read = lambda name: (args.tls_dir / name).read_bytes()  # noqa: E731
    credentials = grpc.ssl_channel_credentials(read("ca.crt"), read("tls.key"), read("tls.crt"))
    options = [("grpc.ssl_target_name_override", args.server_name)] if args.server_name else []
    return grpc.secure_channel(args.target, credentials, options=options)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        with _channel(args) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=args.service), timeout=3)
    except OSError as exc:
        print(f"unhealthy: cannot read the TLS files: {exc}", file=sys.stderr)
        return 1
    except grpc.RpcError as exc:
        print(f"unhealthy: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    ok = reply.status == health_pb2.HealthCheckResponse.SERVING
    print(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
