"""`modipick executor` as a real process: MODIPICK_* configuration, health, reflection, request ids
in the logs, graceful exit on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import grpc
import pytest
from executor_support import execute_request, tensor_input
from fixtures_redis import free_port
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from modipick.v1 import common_pb2, executor_pb2, executor_pb2_grpc

pytestmark = [pytest.mark.tf, pytest.mark.slow]


def wait_until(check, timeout_s: float):
    end = time.monotonic() + timeout_s
    while True:
        try:
            result = check()
            if result:
                return result
        except grpc.RpcError:
            pass
        assert time.monotonic() < end, "timed out"
        time.sleep(0.2)


def test_executor_process_serves_and_shuts_down_gracefully(digits_pool, held_out, tmp_path):
    port = free_port()
    env = {**os.environ, "MODIPICK_MODEL_BASE": str(digits_pool), "MODIPICK_LISTEN": f"127.0.0.1:{port}",
           "MODIPICK_LOG_JSON": "1", "MODIPICK_MAX_CONCURRENCY": "1", "TF_CPP_MIN_LOG_LEVEL": "3",
           "MODIPICK_TF_INTRA_OP_THREADS": "1"}
    log_path = tmp_path / "executor.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "modipick.executor"], env=env, stdout=log, stderr=log)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            wait_until(lambda: health.Check(health_pb2.HealthCheckRequest(service="modipick.v1.ExecutorService"),
                                            timeout=1).status == health_pb2.HealthCheckResponse.SERVING, 90)
            reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
            reply = next(iter(reflection.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]))))
            assert "modipick.v1.ExecutorService" in [s.name for s in reply.list_services_response.service]

            stub = executor_pb2_grpc.ExecutorServiceStub(channel)
            wait_until(lambda: all(m.state == common_pb2.MODEL_STATE_ELIGIBLE for m in stub.ListModels(
                executor_pb2.ListModelsRequest(), timeout=2).models), 60)
            answer = stub.Execute(execute_request("cnn-medium", tensor_input(held_out[0][0])), timeout=10,
                                  metadata=(("x-request-id", "rid-ok-1"),))
            assert answer.request_id == "rid-ok-1" and answer.prediction.label == held_out[1][0]
            with pytest.raises(grpc.RpcError):
                stub.Execute(execute_request("no-such-model", tensor_input(held_out[0][0])), timeout=10,
                             metadata=(("x-request-id", "rid-bad-2"),))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # raw_decode: TensorFlow's C++ writes to the same file unbuffered, and once its absl warning
    # landed right after a JSON line, before that line's newline
    lines = [json.JSONDecoder().raw_decode(line)[0] for line in log_path.read_text().splitlines()
             if line.startswith("{")]
    refused = [line for line in lines if line.get("event") == "execute refused"]
    assert refused and refused[0]["request_id"] == "rid-bad-2" and refused[0]["code"] == "NOT_FOUND"
    events = [line.get("event") for line in lines]
    assert "executor started" in events and "stopped" in events
    sized = [line for line in lines if line.get("event") == "TensorFlow thread pools sized"]
    assert sized and sized[0]["intra_op"] == 1 and sized[0]["inter_op"] == "auto"


def test_tensorflow_threads_come_from_flags_and_environment() -> None:
    from modipick.executor.__main__ import parse_settings

    settings, _ = parse_settings(["--model-base", "/pool", "--tf-intra-op-threads", "1"],
                                 {"MODIPICK_TF_INTER_OP_THREADS": "2"})
    assert (settings.tf_intra_op_threads, settings.tf_inter_op_threads) == (1, 2)
    assert parse_settings(["--model-base", "/pool"], {})[0].tf_intra_op_threads == 0


@pytest.mark.parametrize("argv,message", [
    (["--model-base", "/pool", "--tf-intra-op-threads", "-1"], "must be >= 0"),
    (["--backend", "tfserving", "--tf-inter-op-threads", "2"], "--tensorflow_inter_op_parallelism"),
])
def test_bad_tensorflow_threads_exit_2(argv, message, capsys) -> None:
    from modipick.executor.__main__ import parse_settings

    with pytest.raises(SystemExit) as exited:
        parse_settings(argv, {})
    assert exited.value.code == 2 and message in capsys.readouterr().err
