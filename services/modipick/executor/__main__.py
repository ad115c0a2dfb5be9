"""`modipick executor`: run models (embedded TensorFlow or TensorFlow Serving) under deadlines."""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable, Mapping, NoReturn

from modipick.runtime.config import EnvArgumentParser
from modipick.runtime.entrypoint import add_server_options, run_service, serve_app, server_settings
from modipick.runtime.security_options import add_service_token_option, service_token
from modipick.executor.metrics import ExecutorMetrics


class _BadValue(argparse.ArgumentTypeError, ValueError):
    """Readable from a flag (argparse) and from a MODIPICK_* variable (which catches ValueError)."""


class _Parser(EnvArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2 (no usage dump)
        print(f"{self.prog}: {message}", file=sys.stderr)
        raise SystemExit(2)


def _number(kind: Callable[[str], Any], lowest: float, inclusive: bool) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise _BadValue(f"not a number: {text!r}") from None
        if value != value or value == float("inf") or value < lowest or (not inclusive and value == lowest):
            raise _BadValue(f"must be {'>=' if inclusive else '>'} {lowest:g}, got {text!r}")
        return value
    return parse


MAX_SOCKET_PATH_BYTES = 107  # sun_path holds 108 bytes with the terminating NUL
_positive_int = _number(int, 0, inclusive=False)
_non_negative_int = _number(int, 0, inclusive=True)
_positive_float = _number(float, 0.0, inclusive=False)
_non_negative_float = _number(float, 0.0, inclusive=True)


def _backend(text: str) -> str:
    from modipick.executor.backends import BACKENDS

    if text not in BACKENDS:
        raise _BadValue(f"must be one of {', '.join(BACKENDS)}, got {text!r}")
    return text


def _model_names(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if len(set(names)) != len(names):
        raise _BadValue(f"a model is listed twice in {text!r}")
    return names


def parse_settings(argv: list[str], environ: Mapping[str, str] | None = None):
    from modipick.executor.app import ExecutorSettings

    p = _Parser(prog="modipick executor", description=__doc__, environ=environ)
    p.add_option("--listen", default="0.0.0.0:50052", help="address to serve on")
    p.add_option("--backend", default="embedded", type=_backend,
                 help="embedded | tfserving | oip (an Open Inference Protocol server: Triton, KServe, MLServer)")
    p.add_option("--model-base", default="", help="TF Serving base path of the pool (<base>/<model>/<version>/); "
                 "the tfserving backend reads model names and declared accuracies from it")
    p.add_option("--tfserving-target", default="127.0.0.1:8500", help="TensorFlow Serving gRPC address")
    p.add_option("--oip-target", default="127.0.0.1:8001",
                 help="the oip backend's server, its gRPC address (Triton 8001, MLServer 8081)")
    p.add_option("--oip-models", default="", type=_model_names,
                 help="the oip backend's models, comma-separated (empty: the models of --model-base)")
    p.add_option("--profiler-target", default="", help="Profiler to report observations to (empty: none)")
    p.add_option("--max-concurrency", default=2, type=_positive_int, help="executions running at once")
    p.add_option("--tf-intra-op-threads", default=0, type=_non_negative_int,
                 help="embedded backend: threads one TensorFlow op may use (0: one per core); as TF Serving's "
                      "--tensorflow_intra_op_parallelism")
    p.add_option("--tf-inter-op-threads", default=0, type=_non_negative_int,
                 help="embedded backend: TensorFlow ops run at once (0: one per core); as TF Serving's "
                      "--tensorflow_inter_op_parallelism")
    p.add_option("--max-queue", default=32, type=_non_negative_int,
                 help="requests waiting for a slot; beyond it RESOURCE_EXHAUSTED")
    p.add_option("--listen-unix", default="",
                 help="also serve gRPC on this Unix socket path, for a Selector on the same host "
                      "(its --executor-target unix:PATH; empty: off)")
    p.add_option("--default-timeout-s", default=30.0, type=_positive_float, help="deadline of calls without one")
    add_server_options(p, downstream="the Profiler", int_type=_positive_int, float_type=_non_negative_float,
                       redis=False)
    add_service_token_option(p)
    args = p.parse_args(argv)
    if args.backend == "embedded" and not args.model_base:
        p.error("--model-base (MODIPICK_MODEL_BASE) is required by the embedded backend; "
                "build a pool with `modipick zoo build --pool digits`")
    if args.backend == "oip" and not (args.oip_models or args.model_base):
        p.error("the oip backend needs --oip-models (MODIPICK_OIP_MODELS) or --model-base naming its models: "
                "the Open Inference Protocol has no call listing them")
    if args.backend == "tfserving" and (args.tf_intra_op_threads or args.tf_inter_op_threads):
        p.error("--tf-intra-op-threads/--tf-inter-op-threads size the embedded backend's TensorFlow; "
                "TensorFlow Serving takes --tensorflow_intra_op_parallelism/--tensorflow_inter_op_parallelism")
    if len(args.listen_unix.encode()) > MAX_SOCKET_PATH_BYTES:
        p.error(f"--listen-unix: a Unix socket path has at most {MAX_SOCKET_PATH_BYTES} bytes, "
                f"got {len(args.listen_unix.encode())}: {args.listen_unix!r}")
    settings = ExecutorSettings(
        address=args.listen, unix_socket=args.listen_unix, backend=args.backend, model_base=args.model_base or None,
        tfserving_target=args.tfserving_target, oip_target=args.oip_target, oip_models=args.oip_models,
        profiler_target=args.profiler_target,
        max_concurrency=args.max_concurrency, max_queue=args.max_queue, default_timeout_s=args.default_timeout_s,
        tf_intra_op_threads=args.tf_intra_op_threads, tf_inter_op_threads=args.tf_inter_op_threads,
        service_token=service_token(p, args), **server_settings(p, args))
    return settings, args


async def serve(settings, metrics_port: int = 0) -> None:
    from modipick.executor.app import start_executor

    await serve_app(start_executor, settings, ExecutorMetrics(), metrics_port)


def main(argv: list[str] | None = None) -> int:
    settings, args = parse_settings(list(sys.argv[1:] if argv is None else argv))
    from modipick.runtime.server import SocketInUse

    try:  # a missing pool or bad model files, a socket path in use: 2; interrupted while loading: a clean exit
        return run_service("executor", args, lambda: serve(settings, args.metrics_port),
                           bad_config=(FileNotFoundError, ValueError, SocketInUse))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
