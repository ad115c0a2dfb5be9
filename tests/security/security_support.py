"""Constants and helpers of the attack tests (a plain module: `conftest` names tests/conftest.py)."""

from __future__ import annotations

import time

SECURE_DB = 9
ADMIN_TOKEN = "sec-admin-4b1e"
EXECUTOR_TOKEN = "sec-executor-91ad"
SELECTOR_TOKEN = "sec-selector-27fc"
JWT_SECRET = "sec-jwt-hs256-secret-0123456789abcdef"
ISSUER, AUDIENCE = "https://issuer.test", "modipick"
TICKET_KEYS = {"k2": b"ticket-key-current-5f0c1a9e", "k1": b"ticket-key-previous-77d2b3c4"}
MAX_SHIFT_PCT = 2.0
REPORT_RATE, REPORT_BURST = 20.0, 40


def make_token(subject: str, *, key: object = JWT_SECRET, algorithm: str = "HS256", expires_in_s: float = 600.0,
               issuer: str = ISSUER, audience: str = AUDIENCE, **claims) -> str:
    import jwt

    now = time.time()
    payload = {"sub": subject, "iss": issuer, "aud": audience, "iat": int(now), "exp": int(now + expires_in_s),
               **claims}
    return jwt.encode(payload, key, algorithm=algorithm)

CHANNEL_OPTIONS = [("grpc.http2.hpack_table_size.encoder", 0)]


def stamp(ns: int):
    from google.protobuf.timestamp_pb2 import Timestamp

    ts = Timestamp()
    ts.FromNanoseconds(ns)
    return ts


def digit_tensor(image):
    import numpy as np

    from modipick.v1 import common_pb2

    arr = np.asarray(image, np.float32).reshape(1, 8, 8, 1)
    return common_pb2.Input(tensor=common_pb2.Tensor(dtype="float32", shape=[1, 8, 8, 1], content=arr.tobytes()))


def on_loop(loop, fn):
    """Read a service's state on its own event loop (the thread that changes it)."""
    async def call():
        return fn()
    return loop.run(call())
