"""The settings as operators use them: `--metrics-port` / MODIPICK_METRICS_PORT and `--tracing` /
MODIPICK_TRACING on the real commands (subprocesses), bad values refused in one line, and tracing
off meaning no tracer provider and no interceptor anywhere."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import grpc
import pytest
from fixtures_suite import free_port

from modipick.runtime.metrics import start_metrics_server

COMMAND = [sys.executable, "-c", "import sys; from modipick.cli import main; sys.exit(main(sys.argv[1:]))"]
ROLE_ARGS = {"selector": ["--redis-url", "memory"], "profiler": ["--redis-url", "memory", "--no-discovery"]}


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODIPICK_", "OTEL_"))}
    env.update(extra)
    return env


def wait_metrics(url: str, proc: subprocess.Popen, timeout_s: float = 30.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode}: {proc.stderr.read().decode()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1) as reply:
                return reply.read().decode()
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    raise AssertionError(f"no metrics at {url}")


def stop(proc: subprocess.Popen) -> tuple[str, str]:
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    return out.decode(), err.decode()


@pytest.mark.parametrize("role,metric", [("selector", "modipick_requests_total"),
                                         ("profiler", "modipick_observations_total")])
def test_metrics_port_from_the_environment_serves_the_role_and_process_metrics(role: str, metric: str) -> None:
    port = free_port()
    proc = subprocess.Popen([*COMMAND, role, "--listen", f"127.0.0.1:{free_port()}", *ROLE_ARGS[role]],
                            env=clean_env(MODIPICK_METRICS_PORT=str(port)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        page = wait_metrics(f"http://127.0.0.1:{port}/metrics", proc)
    finally:
        stop(proc)
    assert f"# TYPE {metric} counter" in page
    assert "modipick_redis_errors_total 0.0" in page
    assert "process_cpu_seconds_total" in page  # the process collectors come with the endpoint


@pytest.mark.parametrize("args,env,message", [
    (["--metrics-port", "70000"], {}, "--metrics-port: must be a port in 0..65535, got '70000'"),
    ([], {"MODIPICK_METRICS_PORT": "nine"}, "MODIPICK_METRICS_PORT='nine'"),
    (["--tracing", "jaeger"], {}, "--tracing: must be one of off, console, otlp, got 'jaeger'"),
    ([], {"MODIPICK_TRACING": "zipkin"}, "MODIPICK_TRACING='zipkin'"),
    (["--event-loop", "trio"], {}, "--event-loop: event loop must be one of auto, asyncio, uvloop, got 'trio'"),
    ([], {"MODIPICK_EVENT_LOOP": "tokio"}, "MODIPICK_EVENT_LOOP='tokio'"),
])
def test_bad_settings_exit_2_with_one_line(args: list[str], env: dict[str, str], message: str) -> None:
    done = subprocess.run([*COMMAND, "selector", "--redis-url", "memory", *args], env=clean_env(**env),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.mark.parametrize("args,env,loop", [([], {}, "uvloop"), (["--event-loop", "asyncio"], {}, "asyncio"),
                                           ([], {"MODIPICK_EVENT_LOOP": "asyncio"}, "asyncio")])
def test_the_event_loop_is_uvloop_unless_asked_otherwise(args: list[str], env: dict[str, str], loop: str) -> None:
    proc = subprocess.Popen([*COMMAND, "selector", "--listen", f"127.0.0.1:{free_port()}", "--redis-url", "memory",
                             "--log-json", *args], env=clean_env(**env),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    said = []
    try:
        for line in proc.stdout:  # until it serves (signal handlers set), saying on which loop
            if '"serving"' in line:
                said.append(json.loads(line)["loop"])
                break
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert said == [loop]
    assert proc.returncode == 0


def test_a_busy_metrics_port_is_named(tmp_path) -> None:
    from prometheus_client import CollectorRegistry

    taken = start_metrics_server(0, CollectorRegistry(), addr="0.0.0.0")
    try:
        done = subprocess.run([*COMMAND, "selector", "--redis-url", "memory", "--listen",
                               f"127.0.0.1:{free_port()}", "--metrics-port", str(taken.port)],
                              env=clean_env(), capture_output=True, text=True, timeout=60)
    finally:
        taken.stop()
    assert done.returncode == 1
    assert f"--metrics-port {taken.port}" in done.stderr.strip().splitlines()[-1]


def test_tracing_console_continues_the_callers_trace() -> None:
    """`--tracing console`: a call carrying a W3C traceparent gets a SERVER span in that trace,
    printed by the console exporter when the Selector shuts down."""
    from modipick.v1 import common_pb2, selector_pb2, selector_pb2_grpc

    target = f"127.0.0.1:{free_port()}"
    port = free_port()
    proc = subprocess.Popen([*COMMAND, "selector", "--listen", target, "--redis-url", "memory",
                             "--metrics-port", str(port), "--tracing", "console"],
                            env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    try:
        wait_metrics(f"http://127.0.0.1:{port}/metrics", proc)
        request = selector_pb2.InferRequest(sla_ms=100, input=common_pb2.Input(encoded_image=b"\x89PNG\r\n\x1a\n"))
        request.client_send_time.FromNanoseconds(time.time_ns())
        with grpc.insecure_channel(target) as channel:
            # a call the connection refused (UNAVAILABLE with no server span) would prove nothing
            grpc.channel_ready_future(channel).result(timeout=60)
            with pytest.raises(grpc.RpcError) as refused:
                selector_pb2_grpc.SelectorServiceStub(channel).Infer(
                    request, timeout=5, metadata=(("traceparent", f"00-{trace_id}-00f067aa0ba902b7-01"),))
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE  # no models in an empty store
    finally:
        out, err = stop(proc)
    assert proc.returncode == 0, err[-2000:]
    spans = [json.loads(chunk) for chunk in _json_objects(out)]
    infer = [s for s in spans if s["name"] == "/modipick.v1.SelectorService/Infer"]  # the full gRPC path
    assert len(infer) == 1, out[-2000:]
    assert infer[0]["context"]["trace_id"] == f"0x{trace_id}"
    assert infer[0]["parent_id"] == "0x00f067aa0ba902b7"
    assert infer[0]["kind"] == "SpanKind.SERVER"
    assert infer[0]["status"]["status_code"] == "ERROR"  # UNAVAILABLE is the server's failure
    assert infer[0]["resource"]["attributes"]["service.name"] == "modipick-selector"


def _json_objects(text: str) -> list[str]:
    """The console exporter prints indented JSON objects one after another."""
    objects, depth, start = [], 0, None
    for i, ch in enumerate(text):
        if ch == "{":
            depth += 1
            start = i if depth == 1 else start
        elif ch == "}":
            depth -= 1
            if depth == 0 and start is not None:
                objects.append(text[start:i + 1])
    return objects


def test_tracing_off_sets_no_tracer_and_adds_no_interceptors() -> None:
    code = """
import sys, grpc
from modipick.runtime.tracing import client_interceptors, server_interceptors, configure_tracing
import modipick.selector.app, modipick.executor.app, modipick.profiler.app
from modipick.selector.__main__ import parse_settings
from modipick.client.tracing import aio_interceptors, traced_channel
_, args = parse_settings([], environ={})
assert (args.tracing, args.metrics_port) == ("off", 0)
assert configure_tracing(args.tracing) is None
assert server_interceptors() == [] and client_interceptors() == []
channel = grpc.insecure_channel("127.0.0.1:1")
assert traced_channel(channel) is channel and aio_interceptors() is None
otel = sys.modules.get("opentelemetry.trace")  # redis-py imports it when it is installed
assert otel is None or isinstance(otel.get_tracer_provider(), otel.ProxyTracerProvider)
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code], env=clean_env(), capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_what_start_up_left_alive_is_frozen_out_of_full_collections() -> None:
    import gc

    from modipick.runtime.entrypoint import freeze_startup_heap

    before = gc.get_freeze_count()
    models = [[i] for i in range(5000)]  # stands for what loading models leaves behind
    freeze_startup_heap()
    assert gc.get_freeze_count() >= before + len(models)
