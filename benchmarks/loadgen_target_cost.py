"""The load generator's Python per request around the RPC, through the client SDK, against the
least any target must do with the generated stubs alone.

    python -m benchmarks.loadgen_target_cost [--requests 20000] [--rounds 3]

Baseline: build the InferRequest (send stamp from the intended send time), the call's metadata
and deadline, and record the reply (`reply_from_response`), as a target on the bare stubs does.
Measured: the same through the SDK as `GrpcSelectorTarget.send` does it (`InferCall.scheduled`:
SLA and input checks, the call's metadata and deadline; then the same reply record). No gRPC:
the RPC itself costs the same either way. Alternating rounds, best of five per round; the ratio is
measured against the baseline of the same round.
"""

from __future__ import annotations

import argparse
import time
import timeit

from google.protobuf.timestamp_pb2 import Timestamp

from modipick.client import ClientOptions
from modipick.client.core import InferCall
from modipick.loadgen.datasets import DigitsSource
from modipick.loadgen.grpc_target import MAX_MESSAGE_BYTES, reply_from_response
from modipick.loadgen.target import OutgoingRequest
from modipick.v1 import common_pb2, selector_pb2
from modipick.v1.contract import REQUEST_ID_KEY

REPLY = selector_pb2.InferResponse(
    request_id="lg-000001", disposition=selector_pb2.DISPOSITION_SERVED,
    model=common_pb2.ModelRef(name="digits_large", version=1), reason=common_pb2.SELECTION_REASON_BASE,
    prediction=common_pb2.Prediction(label=2, label_name="2", score=1.0),
    timings=common_pb2.Timings(upload_ms=1.0, budget_ms=148.0, selection_ms=0.1, execution_ms=3.0, server_ms=3.2))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    options = ClientOptions(target="127.0.0.1:1", max_message_bytes=MAX_MESSAGE_BYTES, retry=None)
    request = OutgoingRequest("lg-000001", DigitsSource(limit=5).sample(0).input, 150.0, time.time(), 10.0,
                              policy="modipick", client_id="lte/c-1")

    def stubs() -> object:
        ns = round(request.client_send_time * 1e9)
        message = selector_pb2.InferRequest(
            request_id=request.request_id, input=request.input, sla_ms=request.sla_ms,
            client_send_time=Timestamp(seconds=ns // 1_000_000_000, nanos=ns % 1_000_000_000),
            policy=request.policy, client_id=request.client_id)
        kwargs = {"timeout": request.timeout_s, "metadata": ((REQUEST_ID_KEY, request.request_id),)}
        return message, kwargs, reply_from_response(REPLY)

    def sdk() -> object:
        call = InferCall.scheduled(options, request.input, request.sla_ms,
                                   send_time_ns=round(request.client_send_time * 1e9),
                                   timeout_s=request.timeout_s, request_id=request.request_id,
                                   policy=request.policy, client_id=request.client_id)
        return call.request, call.call_kwargs(), reply_from_response(REPLY)

    def per_request_us(fn) -> float:
        return min(timeit.repeat(fn, number=args.requests, repeat=5)) / args.requests * 1e6

    for round_ in range(1, args.rounds + 1):
        base, measured = per_request_us(stubs), per_request_us(sdk)
        print(f"round {round_}: bare stubs {base:.2f} us/request, SDK {measured:.2f} us/request, "
              f"ratio {measured / base:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
