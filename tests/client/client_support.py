"""Loopback parts for the SDK tests: a SelectorService double (the real generated service on a
real gRPC server, answering as scripted) and a TCP relay that counts the bytes a client sends."""

from __future__ import annotations

import socket
import threading
from collections import deque
from concurrent import futures
from dataclasses import dataclass, field

import grpc

from modipick.v1 import common_pb2, selector_pb2, selector_pb2_grpc

SCORES = [0.01, 0.02, 0.9, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01]
PNG = b"\x89PNG\r\n\x1a\n" + bytes(16)


@dataclass
class Abort:
    code: grpc.StatusCode
    message: str
    trailing_metadata: tuple = ()


@dataclass
class Script:
    """What the double answers: queued aborts first, then a served reply."""

    infer: deque = field(default_factory=deque)
    report: deque = field(default_factory=deque)


class SelectorDouble(selector_pb2_grpc.SelectorServiceServicer):
    def __init__(self) -> None:
        self.script = Script()
        self.infer_metadata: list[dict[str, str]] = []
        self.infer_requests: list[selector_pb2.InferRequest] = []
        self.infer_remaining_s: list[float | None] = []  # the deadline each Infer arrived with
        self.reports: list[selector_pb2.ReportOutcomeRequest] = []
        self.report_metadata: list[dict[str, str]] = []
        self._lock = threading.Lock()

    def Infer(self, request, context):
        with self._lock:
            self.infer_metadata.append(dict(context.invocation_metadata()))
            self.infer_requests.append(request)
            self.infer_remaining_s.append(context.time_remaining())
            abort = self.script.infer.popleft() if self.script.infer else None
        if abort is not None:
            context.abort_with_status(_Status(abort))
        return selector_pb2.InferResponse(
            request_id=request.request_id, disposition=selector_pb2.DISPOSITION_SERVED,
            model=common_pb2.ModelRef(name="cnn-small", version=1), reason=common_pb2.SELECTION_REASON_BASE,
            prediction=common_pb2.Prediction(label=2, label_name="two", score=0.9, scores=SCORES),
            timings=common_pb2.Timings(server_ms=1.0, execution_ms=0.5),
            return_leg_source=selector_pb2.RETURN_LEG_SOURCE_CLASS, meet_probability=0.8125,
            ticket=selector_pb2.OutcomeTicket(request_id=request.request_id, client_id=request.client_id))

    def ReportOutcome(self, request, context):
        with self._lock:
            self.reports.append(request)
            self.report_metadata.append(dict(context.invocation_metadata()))
            abort = self.script.report.popleft() if self.script.report else None
        if abort is not None:
            context.abort_with_status(_Status(abort))
        return selector_pb2.ReportOutcomeResponse()


class _Status(grpc.Status):
    def __init__(self, abort: Abort) -> None:
        self.code, self.details, self.trailing_metadata = abort.code, abort.message, abort.trailing_metadata


class SelectorServer:
    def __init__(self) -> None:
        self.double = SelectorDouble()
        self.server = grpc.server(futures.ThreadPoolExecutor(4))
        selector_pb2_grpc.add_SelectorServiceServicer_to_server(self.double, self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.stop(0).wait(5)


class ByteRelay:
    """Forwards TCP connections to `target_port`, counting the bytes clients send."""

    def __init__(self, target_port: int) -> None:
        self._target = ("127.0.0.1", target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.sent = 0
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._target)
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, counted: bool) -> None:
        try:
            while chunk := src.recv(65536):
                if counted:
                    with self._lock:
                        self.sent += len(chunk)
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._closed = True
        self._listener.close()
