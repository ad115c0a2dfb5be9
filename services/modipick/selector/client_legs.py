"""Return legs partitioned by client: each client's model lives in the store (one key per client,
modipick.stores.client_legs), read with its decision and written back by the replica that learns
its report. A replica works only for the clients it serves: nothing is replayed, and a client that
reaches another replica (its replica died, or a balancer spreads its requests) finds its model
there from its next request on.

`PartitionedLegBook` has the ReturnLegBook's interface for the Budgeter and the OutcomeLearner, and
one awaitable more: `prefetch(client_id)`, called before the (synchronous) decision, which loads the
client's state unless this replica holds it from less than `cache_ttl_s` ago (a bounded LRU of
`cache_clients`; a model not ready yet is read on every decision). Reports are learned in the
background (`run`) with one script call wherever they land: a replica that holds what is stored
(read or written within `cache_ttl_s`, nobody wrote since) replaces it with its new state; any
other appends the leg, and the one whose write makes `fold_legs` pending folds them into a new
state (modipick.stores.client_legs). The model a replica holds learns the leg at once.

Network classes are learned by each replica from the reports it sees (a class is shared by many
clients, so every replica serving a class sees a sample of it; replaying them all would cost every
replica the fleet's reports again). While a class model is not ready, its replica shares the legs
it learns in the class's list in the store and, every `class_share_s`, reads that list and takes a
model learned from it once that one is ready: a fleet's replicas get their class models as soon as
one replica alone would, not N times later. A ready class still shares a few legs per exchange
(CLASS_LEGS_WHEN_READY), so a replica that starts later finds its classes ready at once. See
docs/scaling.md.

The store down: a decision answers from the class model or the prior (counted as `load_failures`;
after a failed read, decisions do not read for READ_PAUSE_S, so a hung Redis does not hold them),
and reports whose write fails are dropped and counted (`write_failures`); learning resumes with
the store.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import random
import time
from dataclasses import dataclass
from typing import Callable

import structlog

from modipick.core.class_legs import ClassLeg, ClassLegError, decode_class_leg, encode_class_leg
from modipick.core.returnleg import ReturnLegEstimate, ReturnLegModel
from modipick.core.returnleg_state import StateError, encode_leg, from_state, generation_of, pending_legs, to_state
from modipick.runtime.tasks import cancel_and_wait
from modipick.selector.returnlegs import LegEstimate, ReturnLegBook, ReturnLegSettings
from modipick.stores.client_legs import DEFAULT_TIMEOUTS, DEFAULT_TTL_S, ClientLegStore, Held, RedisClientLegStore
from modipick.stores.errors import StoreError
from modipick.stores.redis_options import URL_PREFIXES, RedisOptions

log = structlog.get_logger("modipick.selector.client_legs")

MAX_WRITE_ATTEMPTS = 20  # one client's reports rarely race: it sends them one after another
# After a failed read, decisions stop reading for this long: a Redis that hangs would otherwise hold
# every decision for the read timeout. They answer from what is held, the class or the prior.
READ_PAUSE_S = 1.0
CLASS_LEGS_WHEN_READY = 4  # legs a ready class shares per exchange (fresh ones for replicas that start later)


@dataclass(slots=True)
class _Held:
    model: ReturnLegModel | None   # None: the store has no state for the client
    fetched: float
    # (generation, legs pending) of the stored value `model` equals; None: not known to
    # (another replica wrote since). Where it is known, a fold needs no decode.
    stored: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class _Report:
    client_id: str
    upload_ms: float
    return_ms: float
    basis_ms: float | None


class PartitionedLegBook:
    shared = False

    def __init__(self, store: ClientLegStore, settings: ReturnLegSettings = ReturnLegSettings(), *,
                 cache_ttl_s: float = 2.0, cache_clients: int = 10_000, queue: int = 10_000,
                 class_share_s: float = 0.5, clock: Callable[[], float] = time.monotonic,
                 rng: random.Random | None = None) -> None:
        if cache_ttl_s < 0 or cache_clients < 1 or queue < 1 or class_share_s < 0:
            raise ValueError("cache_ttl_s and class_share_s must be >= 0, cache_clients and queue >= 1")
        self.settings = settings
        self._store = store
        self._classes = ReturnLegBook(settings)  # class models and the priors' state, this replica's
        self.cache_ttl_s = cache_ttl_s
        self.cache_clients = cache_clients
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()
        self._held: collections.OrderedDict[str, _Held] = collections.OrderedDict()
        self._reports: asyncio.Queue[_Report] = asyncio.Queue(maxsize=queue)
        self._task: asyncio.Task | None = None
        self._reads_paused_until = float("-inf")
        self.class_share_s = class_share_s  # 0: classes learned from this replica's reports alone
        self._class_outbox: dict[str, list[bytes]] = {}
        self._class_task: asyncio.Task | None = None
        self.loads = self.load_failures = self.cache_hits = 0
        self.writes = self.folds = self.write_races = self.write_failures = self.dropped = self.undecodable = 0
        self.class_legs_shared = self.class_models_taken = self.class_share_failures = 0

    def _new(self) -> ReturnLegModel:
        s = self.settings
        return ReturnLegModel(alpha=s.alpha, window=s.window, min_samples=s.min_samples, prior=s.prior)

    def _decode(self, state: bytes | None) -> ReturnLegModel | None:
        if state is None:
            return None
        try:
            return from_state(state, self._new)
        except StateError as exc:  # another version's state: start over (it is overwritten)
            self.undecodable += 1
            log.warning("client return-leg state not readable; learning it anew", error=str(exc))
            return None

    def _hold(self, client_id: str, model: ReturnLegModel | None, stored: tuple[int, int] | None = None) -> None:
        held = self._held
        held[client_id] = _Held(model, self._clock(), stored)
        held.move_to_end(client_id)
        while len(held) > self.cache_clients:
            held.popitem(last=False)

    # -- decisions --------------------------------------------------------------------------------
    async def prefetch(self, client_id: str) -> None:
        """Have the client's model at hand for `estimate` (from the store unless held recently)."""
        if not client_id:
            return
        entry = self._held.get(client_id)
        # a model not ready yet is read again: its client's next report (on any replica) may make it so
        if (entry is not None and entry.model is not None and entry.model.ready
                and self._clock() - entry.fetched <= self.cache_ttl_s):
            self.cache_hits += 1
            return
        if self._clock() < self._reads_paused_until:
            self.load_failures += 1
            return
        try:
            state = await self._store.load(client_id)
        except StoreError:
            self.load_failures += 1
            self._reads_paused_until = self._clock() + READ_PAUSE_S
            return  # the decision answers from what is held, the class or the prior
        self.loads += 1
        model = self._decode(state)
        self._hold(client_id, model, None if model is None else (generation_of(state), pending_legs(state)))

    def estimate(self, client_id: str, upload_ms: float) -> LegEstimate:
        entry = self._held.get(client_id) if client_id else None
        own = entry.model if entry is not None else None
        if own is not None and own.ready:
            return LegEstimate(own.estimate(upload_ms), "client", "client")
        shared = self._classes.class_model(client_id)
        shared.observe_upload(upload_ms)
        if shared.ready:
            return LegEstimate(shared.estimate(upload_ms), "class", "class")
        if self.settings.prior == "uploads":
            return LegEstimate(shared.estimate(upload_ms), "class", "prior")
        return LegEstimate(ReturnLegEstimate.exact(upload_ms), "client", "prior")

    # -- reports ----------------------------------------------------------------------------------
    def observe(self, client_id: str, upload_ms: float, return_ms: float, basis_ms: float | None,
                owner: str) -> None:
        """The class model learns at once; the client's state in the background (`run`)."""
        class_basis = basis_ms if owner == "class" else None
        shared = self._classes.class_model(client_id)
        shared.observe(upload_ms, return_ms, class_basis, client_id)
        if self.class_share_s:
            outbox = self._class_outbox.setdefault(self._classes.class_name(client_id), [])
            if len(outbox) < (self.settings.window if not shared.ready else CLASS_LEGS_WHEN_READY):
                outbox.append(encode_class_leg(ClassLeg(client_id, upload_ms, return_ms, class_basis)))
        if not client_id:
            return
        try:
            self._reports.put_nowait(_Report(client_id, upload_ms, return_ms, basis_ms if owner == "client" else None))
        except asyncio.QueueFull:
            self.dropped += 1

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="client-return-legs")
        if self._class_task is None and self.class_share_s:
            self._class_task = asyncio.create_task(self.share_classes_every(), name="class-return-legs")

    async def stop(self, timeout_s: float = 2.0) -> None:
        await self.drain(timeout_s)
        await cancel_and_wait(self._task)
        await cancel_and_wait(self._class_task)
        self._task = self._class_task = None
        close = getattr(self._store, "close", None)
        if close is not None:
            await close()

    async def drain(self, timeout_s: float = 2.0) -> None:
        """Wait (bounded) until queued reports were written: shutdown and tests."""
        if self._task is None:
            return
        try:
            await asyncio.wait_for(self._reports.join(), timeout_s)
        except asyncio.TimeoutError:
            pass

    async def run(self) -> None:
        while True:
            report = await self._reports.get()
            try:
                await self.learn(report)
            except StoreError as exc:
                self.write_failures += 1
                log.warning("client return leg not stored", client_id=report.client_id, error=str(exc))
            finally:
                self._reports.task_done()

    async def learn(self, report: _Report) -> None:
        """One report into the client's stored value: a new state where this replica holds what is
        stored, else its leg appended and the pending legs folded when due."""
        cid = report.client_id
        entry = self._held.get(cid)
        held = entry.model if entry is not None else None
        if held is not None:  # this replica's view learns the leg at once
            held.observe(report.upload_ms, report.return_ms, report.basis_ms)
        elif entry is not None and await self._create(cid, report, None):
            self.writes += 1  # the decision found no state: this is likely the client's first report
            return
        leg = encode_leg(report.upload_ms, report.return_ms, report.basis_ms)
        for attempt in range(1, MAX_WRITE_ATTEMPTS + 1):
            written = await self._store.write_leg(cid, leg, self._replacing(entry))
            # what this replica holds is the stored value (its leg included) unless another wrote since
            current = (entry is not None and held is not None and entry.stored is not None
                       and entry.stored == (written.generation, written.pending - written.stored))
            if written.replaced:
                stored = True
                self._hold(cid, held, (written.generation, 0))
            elif written.value is not None:
                # appended: the leg is stored whether or not the fold wins (its legs stay pending)
                stored = await self._fold(cid, written.value, held if current else None,
                                          None if written.stored else report) or written.stored
            elif written.stored:
                stored = True
                entry = self._held.get(cid)
                if entry is not None:
                    entry.stored = (written.generation, written.pending) if current else None
            else:
                stored = await self._create(cid, report, held)
            if stored:
                self.writes += 1
                return
            self.write_races += 1
            entry = None  # what was held is not what is stored
            # the other writer goes on: back off a little (jittered) so that races do not repeat in step
            await asyncio.sleep(0.001 * attempt * self._rng.random())
        raise StoreError(f"client {cid!r}: return-leg state changed {MAX_WRITE_ATTEMPTS} times while learning")

    def _replacing(self, entry: _Held | None) -> Held | None:
        """The state to write in place of the stored value, where this replica holds that value
        (read or written by it within `cache_ttl_s`, nobody known to have written since)."""
        if entry is None or entry.model is None or entry.stored is None:
            return None
        if self._clock() - entry.fetched > self.cache_ttl_s:
            return None  # likely stale: another replica may have written since; appending costs no encode
        generation, pending = entry.stored
        return Held(generation, pending, to_state(entry.model, generation + 1))

    async def _fold(self, cid: str, value: bytes, current: ReturnLegModel | None, report: _Report | None) -> bool:
        """The state and the legs pending in `value` (and `report`'s leg) into a new state;
        `current`: a model equal to that already (no decode)."""
        model = current
        if model is None:
            model = self._decode(value) or self._new()
            if report is not None:
                model.observe(report.upload_ms, report.return_ms, report.basis_ms)
        state = to_state(model, generation_of(value) + 1)
        kept = await self._store.fold(cid, value, state)
        if kept is None:
            entry = self._held.get(cid)
            if entry is not None:
                entry.stored = None
            return False
        self.folds += 1
        self._hold(cid, model, (generation_of(state), 0) if kept == 0 else None)
        return True

    async def _create(self, cid: str, report: _Report, held: ReturnLegModel | None) -> bool:
        """The client's first state (none of this version is stored): what this replica holds (it
        learned the leg: Redis lost the key, or it expired) or a new model of the one leg."""
        if held is None:
            held = self._new()
            held.observe(report.upload_ms, report.return_ms, report.basis_ms)
        # a random first generation: a fold that read a state since lost cannot match this one
        state = to_state(held, self._rng.getrandbits(32))
        stored, current = await self._store.swap(cid, None, state)
        if not stored and current is not None and self._decode(current) is None:
            stored, _ = await self._store.swap(cid, current, state)  # another version's state: replaced
        if stored:
            self._hold(cid, held, (generation_of(state), 0))
        return stored

    # -- network classes, shared ------------------------------------------------------------------
    async def share_classes_every(self) -> None:
        while True:
            await asyncio.sleep(self.class_share_s * (0.75 + 0.5 * self._rng.random()))
            try:
                await self.share_classes()
            except StoreError as exc:
                self.class_share_failures += 1
                log.warning("class return legs not shared", error=str(exc))

    async def share_classes(self) -> None:
        """One exchange: append the legs learned since the last one to their classes' lists, then
        read the list of every class not ready here and take the model learned from it if that is."""
        outbox, self._class_outbox = self._class_outbox, {}
        for name, legs in outbox.items():
            await self._store.push_class_legs(name, legs, keep=self.settings.window)
            self.class_legs_shared += len(legs)
        for name, model in self._classes.class_models():
            if model.ready:
                continue
            raw_legs = await self._store.class_legs(name)
            # legs learned here while the list was read: in the outbox, not in the list yet
            pooled = self._pooled_model(raw_legs + self._class_outbox.get(name, []))
            if pooled is not None and pooled.ready and not model.ready:
                self._classes.replace_class_model(name, pooled)
                self.class_models_taken += 1

    def _pooled_model(self, raw_legs: list[bytes]) -> ReturnLegModel | None:
        """A class model learned from `raw_legs`; None where it could not be ready (too few legs or
        clients), so a class that stays small costs a decode per exchange, not a model."""
        legs = []
        for raw in raw_legs:
            try:
                legs.append(decode_class_leg(raw))
            except ClassLegError:
                self.undecodable += 1
        s = self.settings
        if len(legs) < s.min_samples or len({leg.client_id for leg in legs}) < s.class_min_clients:
            return None
        pooled = self._classes.new_class_model()
        for leg in legs:
            pooled.observe(leg.upload_ms, leg.return_ms, leg.basis_ms, leg.client_id)
        return pooled

    # -- what the metrics read ------------------------------------------------------------------
    def capped(self) -> int:
        return self._classes.capped()

    def known_clients(self) -> int:
        return len(self._held)


def forwards_legs(book: object) -> bool:
    """Whether reports carry their leg on to the Profiler's stream (replicated books read it;
    partitioned ones learn in the store themselves)."""
    return type(book) is not PartitionedLegBook


def open_partitioned_book(store_url: str, store_options: dict, settings: ReturnLegSettings, *,
                          ttl_s: float = DEFAULT_TTL_S, cache_ttl_s: float = 2.0) -> PartitionedLegBook:
    """A started PartitionedLegBook on the Redis at `store_url`, any the profile store takes (one
    server, Sentinel, Cluster), with the profile store's options (namespace, credentials, TLS;
    its timeouts and retries if set, else DEFAULT_TIMEOUTS and none)."""
    if not store_url.lower().startswith(URL_PREFIXES):
        raise ValueError(f"return-leg sharing 'partitioned' needs a Redis store URL, got {store_url.split('://')[0]!r}")
    # no retries: a decision does not wait out a back-off (a failed read pauses reads, READ_PAUSE_S)
    options = dataclasses.replace(RedisOptions(timeouts=DEFAULT_TIMEOUTS, retries=0), **store_options)
    book = PartitionedLegBook(RedisClientLegStore.from_url(store_url, options, ttl_s=ttl_s), settings,
                              cache_ttl_s=cache_ttl_s)
    book.start()
    return book


def watch_client_legs(registry, book: PartitionedLegBook) -> None:
    """`modipick_client_return_legs_total{event=...}`: reads, cache hits, writes, races and failures."""
    from prometheus_client.core import CounterMetricFamily

    class _Collector:
        def collect(self):
            family = CounterMetricFamily("modipick_client_return_legs", "Per-client return-leg state in the store",
                                         labels=["event"])
            for event, value in (("load", book.loads), ("load_failure", book.load_failures),
                                 ("cache_hit", book.cache_hits), ("write", book.writes), ("fold", book.folds),
                                 ("write_race", book.write_races), ("write_failure", book.write_failures),
                                 ("dropped", book.dropped), ("undecodable", book.undecodable),
                                 ("class_leg_shared", book.class_legs_shared),
                                 ("class_model_taken", book.class_models_taken),
                                 ("class_share_failure", book.class_share_failures)):
                family.add_metric([event], value)
            yield family

        def describe(self):
            return []

    registry.register(_Collector())
