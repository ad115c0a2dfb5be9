"""What travels in gRPC metadata: the request id (as well as in messages)."""

from __future__ import annotations

import uuid
from typing import Iterable

from modipick.v1.contract import MAX_REQUEST_ID_CHARS, REQUEST_ID_KEY, request_id_problem

__all__ = ["MAX_REQUEST_ID_CHARS", "REQUEST_ID_KEY", "new_request_id", "request_id_from", "request_id_problem",
           "with_request_id"]


def new_request_id() -> str:
    return uuid.uuid4().hex


def request_id_from(metadata: Iterable[tuple[str, str | bytes]] | None, fallback: str = "") -> str:
    for key, value in metadata or ():
        if key == REQUEST_ID_KEY:
            return value.decode() if isinstance(value, bytes) else value
    return fallback or new_request_id()


def with_request_id(request_id: str, metadata: Iterable[tuple[str, str]] = ()) -> tuple[tuple[str, str], ...]:
    return (*tuple(metadata), (REQUEST_ID_KEY, request_id))
