"""A shared ReturnLegBook fed from the store's return-leg stream (`ReturnLegLog`).

Every Selector replica reads the one stream the Profiler appends to, from its last id, after each
profile refresh (so return legs are as stale as profiles, at most the refresh period plus the
Profiler's linger), and applies the samples in stream order: replicas converge to the same models
whichever of them the reports reached. A new replica starts from the oldest entry kept, so it
joins with models learned from the same recent samples (older ones were trimmed).

The store down: the read fails, is counted, and the next refresh reads on from the same id
(nothing the stream kept is missed); requests keep the models as they are.
"""

from __future__ import annotations

import asyncio

import structlog

from modipick.selector.returnlegs import ReturnLegBook
from modipick.stores import AsyncReturnLegLog, ReturnLegLog, StoreError

log = structlog.get_logger("modipick.selector.leg_stream")


class ReturnLegFeed:
    def __init__(self, store: AsyncReturnLegLog, book: ReturnLegBook, *, page: int = 5_000, max_pages: int = 40,
                 chunk: int = 256) -> None:
        if page < 1 or max_pages < 1 or chunk < 1:
            raise ValueError("page, max_pages and chunk must be >= 1")
        self._store = store
        self.book = book
        self.page = page
        self.max_pages = max_pages  # per pull: a long backlog is read over several refreshes
        self.chunk = chunk          # samples applied between yields to the event loop
        self.last_id = "0"
        self.applied = 0
        self.skipped = 0            # undecodable stream entries
        self.failed_reads = 0
        self.last_error = ""
        self._lock = asyncio.Lock()

    async def pull(self) -> int:
        """Read and apply what the stream has after `last_id`; returns how many samples were applied."""
        async with self._lock:  # one reader: the order is the stream's
            applied = 0
            for _ in range(self.max_pages):
                try:
                    page = await self._store.read_return_legs(self.last_id, self.page)
                except StoreError as exc:
                    self.failed_reads += 1
                    if str(exc) != self.last_error:
                        log.warning("return-leg stream unreadable; keeping the models as they are", error=str(exc))
                    self.last_error = str(exc)
                    return applied
                if self.last_error:
                    log.info("return-leg stream readable again", failed_reads=self.failed_reads)
                    self.last_error = ""
                entries = page.entries
                for start in range(0, len(entries), self.chunk):
                    part = entries[start:start + self.chunk]
                    for _, sample in part:
                        self.book.apply(sample)
                    self.last_id = part[-1][0]
                    self.applied += len(part)
                    applied += len(part)
                    await asyncio.sleep(0)  # long backlogs: let requests through between chunks
                self.last_id = page.last_id
                self.skipped += page.skipped
                if page.read < self.page:
                    break
            return applied


def resolve_sharing(sharing: str, *, learned: bool, store_url: str, store: object) -> str:
    """"partitioned", "store" or "local". `auto`: partitioned when the Selector is configured with a
    Redis store (`store_url`: one server, Sentinel or Cluster), each client's model in Redis; else
    local. `store` (the Profiler's replicated stream) is chosen by name only; with a store that has
    no stream it is a configuration error, as is `partitioned` without a Redis URL."""
    from modipick.stores.redis_options import URL_PREFIXES

    if not learned:
        return "local"  # nothing is learned (mirror or fixed return legs)
    on_redis = store_url.strip().lower().startswith(URL_PREFIXES)
    if sharing == "auto":
        return "partitioned" if on_redis else "local"
    if sharing == "store" and not isinstance(store, (ReturnLegLog, AsyncReturnLegLog)):
        raise ValueError(f"return-leg sharing 'store' needs a store with a return-leg stream, not {store!r}")
    if sharing == "partitioned" and not on_redis:
        raise ValueError(f"return-leg sharing 'partitioned' needs a Redis store URL, got "
                         f"{store_url.split('://')[0]!r}")
    return sharing
