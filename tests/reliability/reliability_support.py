"""Helpers of the reliability tests: service processes, health over mutual TLS, a load generator
that classifies every request's end, and the figures file docs/reliability.md is built from."""

from __future__ import annotations

import collections
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc

from fixtures_suite import LoopThread, wait_until  # noqa: F401  (re-exported for the reliability tests)
from lag_support import SchedulingLag

ROOT = Path(__file__).resolve().parents[2]
FIGURES_ENV = "MODIPICK_RELIABILITY_OUT"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
REDIS_USER = "modipick"
REDIS_PASSWORD = "rel-pass-9f3"
ADMIN_TOKEN = "rel-admin-7c1d"
RIG_MODELS = ["mlp-tiny", "mlp-small", "cnn-small", "cnn-large"]
E3_MODELS = ["mlp-tiny", "cnn-small", "cnn-large"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stamp(ns: int | None = None) -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(time.time_ns() if ns is None else ns)
    return ts


def digit_input(seed: int = 0):
    from modipick.v1 import common_pb2

    image = np.random.default_rng(seed).integers(0, 17, (1, 8, 8, 1)).astype(np.float32)
    return common_pb2.Input(tensor=common_pb2.Tensor(dtype="float32", shape=[1, 8, 8, 1], content=image.tobytes()))


# -- channels and health ---------------------------------------------------------------------------
def channel(target: str, pki=None, **creds) -> grpc.Channel:
    if pki is None:
        return grpc.insecure_channel(target)
    return grpc.secure_channel(target, pki.channel_credentials(**creds))


def health_status(target: str, pki=None, service: str = "", timeout_s: float = 1.0) -> int | None:
    with channel(target, pki) as ch:
        try:
            return health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=service),
                                                        timeout=timeout_s).status
        except grpc.RpcError:
            return None


class HealthWatch:
    """Records every status a Watch stream reports for `service`, with its time."""

    def __init__(self, target: str, pki=None, service: str = "") -> None:
        self.service = service
        self.seen: list[tuple[float, int]] = []
        self.ended: str = ""
        self._channel = channel(target, pki)
        self._call = health_pb2_grpc.HealthStub(self._channel).Watch(health_pb2.HealthCheckRequest(service=service))
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for reply in self._call:
                self.seen.append((time.monotonic(), reply.status))
        except grpc.RpcError as exc:
            self.ended = exc.code().name

    @property
    def statuses(self) -> list[int]:
        return [s for _, s in self.seen]

    def first(self, status: int) -> float | None:
        return next((t for t, s in self.seen if s == status), None)

    def close(self) -> None:
        self._call.cancel()
        self._channel.close()
        self._thread.join(5)


# -- service processes -----------------------------------------------------------------------------
def modipick_command(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from modipick.cli import main; sys.exit(main(sys.argv[1:]))", *args]


@dataclass
class ServiceProcess:
    name: str
    args: list[str]
    log: Path
    target: str
    pki: Any = None
    cwd: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None

    def start(self) -> "ServiceProcess":
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODIPICK_")}
        env.update(TF_CPP_MIN_LOG_LEVEL="2", **self.env)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(modipick_command(*self.args), stdout=out, stderr=subprocess.STDOUT,
                                         env=env, cwd=self.cwd)
        return self

    def wait_serving(self, timeout_s: float = 120.0, service: str = "") -> "ServiceProcess":
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}):\n{self.tail()}")
            if health_status(self.target, self.pki, service) == SERVING:
                return self
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} at {self.target} not SERVING after {timeout_s:g} s:\n{self.tail()}")

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def pause(self) -> None:
        self.signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.signal(signal.SIGCONT)

    def kill(self) -> None:
        if self.proc is not None:
            self.resume()
            self.proc.kill()
            self.proc.wait(10)

    def stop(self, timeout_s: float = 15.0) -> int | None:
        if self.proc is None:
            return None
        self.resume()
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)


# -- load ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    started: float      # monotonic
    elapsed_ms: float
    result: str         # served | run_on_device | <gRPC status name>
    details: str = ""
    model: str = ""
    deadline_ms: float = 0.0


class Load:
    """`threads` clients sending Infer back to back (each its own channel), until stop(); `lag`
    watches how late this process's threads ran meanwhile."""

    def __init__(self, target: str, pki=None, *, sla_ms: float = 500.0, threads: int = 3,
                 policy: str = "", pause_s: float = 0.0, make_input=digit_input) -> None:
        from modipick.v1 import selector_pb2, selector_pb2_grpc

        self._pb, self._grpc = selector_pb2, selector_pb2_grpc
        self.target, self.pki, self.sla_ms, self.policy, self.pause_s = target, pki, sla_ms, policy, pause_s
        self.outcomes: list[Outcome] = []
        self._stop = threading.Event()
        self._make_input = make_input
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]
        self.lag = SchedulingLag()

    def start(self) -> "Load":
        self.lag.start()
        for t in self._threads:
            t.start()
        return self

    def _run(self, worker: int) -> None:
        inputs = [self._make_input(worker * 100 + i) for i in range(8)]
        with channel(self.target, self.pki) as ch:
            stub = self._grpc.SelectorServiceStub(ch)
            n = 0
            while not self._stop.is_set():
                outcome = self.one(stub, inputs[n % len(inputs)], f"w{worker}-{n}")
                self.outcomes.append(outcome)
                n += 1
                if self.pause_s or outcome.result not in ("served", "run_on_device"):
                    time.sleep(self.pause_s or 0.01)  # no hot loop against a refusing server

    def one(self, stub, model_input, request_id: str) -> Outcome:
        request = self._pb.InferRequest(request_id=request_id, input=model_input, sla_ms=self.sla_ms,
                                        client_send_time=stamp(), policy=self.policy)
        started = time.monotonic()
        try:
            reply = stub.Infer(request, timeout=self.sla_ms / 1000.0)
        except grpc.RpcError as exc:
            return Outcome(started, (time.monotonic() - started) * 1000, exc.code().name, exc.details() or "",
                           deadline_ms=self.sla_ms)
        result = "served" if reply.disposition == self._pb.DISPOSITION_SERVED else "run_on_device"
        return Outcome(started, (time.monotonic() - started) * 1000, result, model=reply.model.name,
                       deadline_ms=self.sla_ms)

    def stop(self) -> list[Outcome]:
        self._stop.set()
        for t in self._threads:
            t.join(30)
        self.lag.stop()
        return self.outcomes

    def since(self, t: float) -> list[Outcome]:
        return [o for o in list(self.outcomes) if o.started >= t]


def by_result(outcomes: list[Outcome]) -> dict[str, int]:
    return dict(sorted(collections.Counter(o.result for o in outcomes).items()))


def request_figures(outcomes: list[Outcome]) -> dict[str, Any]:
    counts = by_result(outcomes)
    ok = counts.get("served", 0) + counts.get("run_on_device", 0)
    late = [o for o in outcomes if o.elapsed_ms > o.deadline_ms]
    return {"sent": len(outcomes), "succeeded": ok, "served": counts.get("served", 0),
            "run_on_device": counts.get("run_on_device", 0),
            "failed": {k: v for k, v in counts.items() if k not in ("served", "run_on_device")},
            "max_elapsed_over_deadline_ms": round(max((o.elapsed_ms - o.deadline_ms for o in outcomes),
                                                      default=0.0), 1),
            "ended_after_deadline": len(late)}


# -- figures ---------------------------------------------------------------------------------------
class Figures:
    """What the fault tests measured, merged into one JSON file (default out/reliability.json)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def record(self, section: str, **values: Any) -> None:
        with self._lock:
            data = json.loads(self.path.read_text()) if self.path.exists() else {}
            data.setdefault(section, {}).update(values)
            data.setdefault("_run", {}).update(recorded_at=time.strftime("%Y-%m-%d %H:%M:%S"),
                                               python=sys.version.split()[0], cpus=os.cpu_count())
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
            os.replace(tmp, self.path)


def figures_path() -> Path:
    return Path(os.environ.get(FIGURES_ENV) or ROOT / "out" / "reliability.json")
