"""What travels in gRPC metadata: the request id (as well as in messages)."""

from __future__ import annotations

import uuid
from typing import Iterable

REQUEST_ID_KEY = "x-request-id"


def new_request_id() -> str:
    return uuid.uuid4().hex


def request_id_from(metadata: Iterable[tuple[str, str | bytes]] | None, fallback: str = "") -> str:
    for key, value in metadata or ():
        if key == REQUEST_ID_KEY:
            return value.decode() if isinstance(value, bytes) else value
    return fallback or new_request_id()


def with_request_id(request_id: str, metadata: Iterable[tuple[str, str]] = ()) -> tuple[tuple[str, str], ...]:
    return (*tuple(metadata), (REQUEST_ID_KEY, request_id))


MAX_REQUEST_ID_CHARS = 128


def request_id_problem(request_id: str) -> str:
    """Why `request_id` cannot travel on (it goes into gRPC metadata downstream), or ""."""
    if len(request_id) > MAX_REQUEST_ID_CHARS or not (request_id.isascii() and request_id.isprintable()):
        return f"request_id: at most {MAX_REQUEST_ID_CHARS} printable ASCII characters (e.g. a uuid4 hex)"
    return ""
