"""An awaited store driven through the blocking contract: every call runs to completion on a loop
this view owns, so the one contract suite checks both forms (the store itself stays async)."""

from __future__ import annotations

import asyncio

from modipick.stores import AsyncProfileLegStore, AsyncRedisProfileStore


class BlockingView:
    def __init__(self, store: AsyncProfileLegStore) -> None:
        self.aio = store
        self._loop = asyncio.new_event_loop()
        if isinstance(store, AsyncRedisProfileStore):
            self.legs_key = store.legs_key

    def _run(self, coroutine):
        return self._loop.run_until_complete(coroutine)

    def load_all(self):
        return self._run(self.aio.load_all())

    def register(self, profile):
        return self._run(self.aio.register(profile))

    def deregister(self, name, version):
        return self._run(self.aio.deregister(name, version))

    def observe_many(self, observations, *, alpha, now=None):
        return self._run(self.aio.observe_many(observations, alpha=alpha, now=now))

    def record_outcome(self, name, version, correct):
        return self._run(self.aio.record_outcome(name, version, correct))

    def set_state(self, name, version, state):
        return self._run(self.aio.set_state(name, version, state))

    def reseed(self, name, version, mean_ms, var_ms2, now=None):
        return self._run(self.aio.reseed(name, version, mean_ms, var_ms2, now))

    def append_return_legs(self, samples, *, keep):
        return self._run(self.aio.append_return_legs(samples, keep=keep))

    def read_return_legs(self, after, count):
        return self._run(self.aio.read_return_legs(after, count))

    def close(self):
        self._run(self.aio.close())
        self._loop.close()
