"""Coalescing writes on a stream that takes one write at a time: whatever queued up while the
previous write was in flight goes in the next message, so no write waits for company."""

from __future__ import annotations

import asyncio
from typing import Any


def take_batch(first: Any, queue: asyncio.Queue, *, max_items: int, max_bytes: int,
               stop: Any = None) -> tuple[list[Any], Any]:
    """`first` and what `queue` holds already, up to `max_items` and `max_bytes` (protobuf
    ByteSize; `first` always goes). Returns the batch and the item that opens the next one: one
    that did not fit, or `stop` when it came up, or None."""
    batch, size = [first], first.ByteSize()
    while not queue.empty() and len(batch) < max_items:
        following = queue.get_nowait()
        if following is stop and stop is not None:
            return batch, following
        following_size = following.ByteSize()
        if size + following_size > max_bytes:
            return batch, following
        batch.append(following)
        size += following_size
    return batch, None
