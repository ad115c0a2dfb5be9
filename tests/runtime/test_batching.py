"""take_batch: what goes in the next stream message."""

from __future__ import annotations

import asyncio

from modipick.runtime.batching import take_batch
from modipick.v1 import executor_pb2


def call(call_id: int, payload: int = 0) -> executor_pb2.ExecuteCall:
    return executor_pb2.ExecuteCall(call_id=call_id, request=executor_pb2.ExecuteRequest(request_id="x" * payload))


def queued(*items) -> asyncio.Queue:
    queue: asyncio.Queue = asyncio.Queue()
    for item in items:
        queue.put_nowait(item)
    return queue


def ids(batch) -> list[int]:
    return [c.call_id for c in batch]


def test_what_queued_meanwhile_joins_up_to_the_item_limit():
    queue = queued(call(2), call(3), call(4))
    batch, carried = take_batch(call(1), queue, max_items=3, max_bytes=1 << 20)
    assert ids(batch) == [1, 2, 3] and carried is None and queue.qsize() == 1


def test_an_item_that_would_pass_the_byte_limit_opens_the_next_message():
    big = call(3, payload=900)
    batch, carried = take_batch(call(1, 100), queued(call(2, 100), big, call(4)), max_items=10, max_bytes=1000)
    assert ids(batch) == [1, 2] and carried is big


def test_the_first_item_goes_even_when_it_alone_passes_the_limit():
    batch, carried = take_batch(call(1, 5000), queued(), max_items=10, max_bytes=1000)
    assert ids(batch) == [1] and carried is None


def test_the_stop_marker_ends_the_batch_and_is_handed_back():
    end = object()
    batch, carried = take_batch(call(1), queued(call(2), end, call(3)), max_items=10, max_bytes=1 << 20, stop=end)
    assert ids(batch) == [1, 2] and carried is end
