"""A real MLServer (Seldon's Open Inference Protocol server) on loopback, serving a digits model.

MLServer pins protobuf < 7 and its own web stack, which modipick's environment cannot hold, so it
lives in a virtual environment of its own, built once with pip and kept under
~/.cache/modipick/ (or MODIPICK_MLSERVER_VENV). A build that fails fails the tests that need it,
with pip's own words: nothing is skipped.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUNTIME = HERE / "mlserver_digits" / "digits_runtime.py"
MODEL = "digits-logreg"
REQUIREMENTS = ("mlserver==1.7.1", "scikit-learn>=1.3")
BUILD_TIMEOUT_S = 900


class MLServerUnavailable(RuntimeError):
    pass


def venv_path() -> Path:
    override = os.environ.get("MODIPICK_MLSERVER_VENV")
    if override:
        return Path(override)
    tag = "-".join(r.replace("==", "").replace(">=", "") for r in REQUIREMENTS[:1])
    return Path.home() / ".cache" / "modipick" / f"{tag}-py{sys.version_info[0]}{sys.version_info[1]}"


def ensure_venv() -> Path:
    """MLServer's virtual environment, built now unless a complete one is cached; its python."""
    venv = venv_path()
    done = venv / ".modipick-complete"
    python = venv / "bin" / "python"
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f".{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time (parallel test runs)
        if done.exists() and done.read_text() == "\n".join(REQUIREMENTS) and python.exists():
            return python
        shutil.rmtree(venv, ignore_errors=True)
        steps = [[sys.executable, "-m", "venv", str(venv)],
                 [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *REQUIREMENTS]]
        for step in steps:
            try:
                out = subprocess.run(step, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                raise MLServerUnavailable(f"building MLServer's virtual environment at {venv} took over "
                                          f"{BUILD_TIMEOUT_S} s: {' '.join(step[-len(REQUIREMENTS):])}") from None
            if out.returncode != 0:
                raise MLServerUnavailable(f"cannot build MLServer's virtual environment at {venv} "
                                          f"({' '.join(step[:4])} ... exited {out.returncode}):\n"
                                          f"{(out.stdout + out.stderr)[-3000:]}")
        done.write_text("\n".join(REQUIREMENTS))
        return python


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MLServer:
    """`mlserver start` on a model folder holding the digits runtime; `.target` is its gRPC address."""

    def __init__(self, python: Path, workdir: Path) -> None:
        self.workdir = workdir
        self.grpc_port = _free_port()
        self.target = f"127.0.0.1:{self.grpc_port}"
        self.log = workdir / "mlserver.log"
        shutil.copy(RUNTIME, workdir / RUNTIME.name)
        (workdir / "settings.json").write_text(json.dumps({
            "host": "127.0.0.1", "http_port": _free_port(), "grpc_port": self.grpc_port,
            "metrics_port": _free_port(), "parallel_workers": 0}))
        model_dir = workdir / MODEL
        model_dir.mkdir()
        (model_dir / "model-settings.json").write_text(json.dumps({
            "name": MODEL, "implementation": "digits_runtime.DigitsRuntime", "parameters": {"version": "1"},
            "inputs": [{"name": "image", "datatype": "FP32", "shape": [-1, 8, 8, 1]}],
            "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}]}))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MODIPICK_", "PYTHON"))}
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen([str(python), "-c", "import sys; from mlserver.cli import main; "
                                          "sys.exit(main())", "start", str(workdir)],
                                         cwd=workdir, stdout=out, stderr=subprocess.STDOUT, env=env)

    def wait_ready(self, timeout_s: float = 240.0) -> "MLServer":
        import grpc

        from modipick.oip.v2 import open_inference_grpc_pb2 as oip
        from modipick.oip.v2 import open_inference_grpc_pb2_grpc as oip_grpc

        deadline = time.monotonic() + timeout_s
        with grpc.insecure_channel(self.target) as channel:
            stub = oip_grpc.GRPCInferenceServiceStub(channel)
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise MLServerUnavailable(f"mlserver exited ({self.proc.returncode}):\n{self.tail()}")
                try:
                    if stub.ModelReady(oip.ModelReadyRequest(name=MODEL), timeout=1).ready:
                        return self
                except grpc.RpcError:
                    pass
                time.sleep(0.3)
        raise MLServerUnavailable(f"mlserver's {MODEL} not ready after {timeout_s:g} s:\n{self.tail()}")

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else "(no log)"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
