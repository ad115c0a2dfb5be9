"""Writer processes for the replica test: each streams RecordObservations to a Profiler over mutual
TLS, as an Executor's reporter does (a module, so `spawn` children can import it)."""

from __future__ import annotations

import random
from pathlib import Path

MODELS = [("agree-a", 1), ("agree-b", 1), ("agree-b", 2)]


def write_process(target: str, tls: tuple[str, str, str], worker: int, streams: int, batches: int,
                  batch_size: int, start, results) -> None:
    import grpc

    from modipick.v1 import common_pb2, profiler_pb2, profiler_pb2_grpc

    ca, cert, key = (Path(p).read_bytes() for p in tls)
    rng = random.Random(worker)
    sent = {f"{n}:{v}": 0 for n, v in MODELS}
    accepted = 0
    with grpc.secure_channel(target, grpc.ssl_channel_credentials(ca, key, cert)) as channel:
        stub = profiler_pb2_grpc.ProfilerServiceStub(channel)
        grpc.channel_ready_future(channel).result(timeout=30)
        start.wait(timeout=60)  # every writer streams at the same time
        for _ in range(streams):
            requests = []
            for _ in range(batches):
                observations = []
                for _ in range(batch_size):
                    name, version = rng.choice(MODELS)
                    sent[f"{name}:{version}"] += 1
                    observations.append(profiler_pb2.Observation(
                        model=common_pb2.ModelRef(name=name, version=version),
                        queue_ms=rng.uniform(0.0, 1.0), execution_ms=rng.uniform(1.0, 20.0)))
                requests.append(profiler_pb2.RecordObservationsRequest(observations=observations))
            accepted += stub.RecordObservations(iter(requests), timeout=60).accepted
    results.put((worker, accepted, sent))
