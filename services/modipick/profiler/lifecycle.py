"""The model registry's life cycle, driven by what the Executor lists.

    unknown --(AVAILABLE in the Executor)--> warming --(N runs discarded, M recorded)--> eligible
    eligible --(Executor no longer AVAILABLE)--> loading --(AVAILABLE again)--> warming ...
    any --(probe fails)--> failing --(a later probe passes)--> eligible

Warm-ups wait while the Executor still lists a model as LOADING: loading SavedModels competes for
the same cores, and probes run meanwhile would record that contention as the model's latency.
Eligible models not observed for `reprobe_after_s` are probed again so their profile does not
go stale while no policy picks them (paper 3.3, practical considerations). Deregistered models
are not re-registered by discovery until registered again explicitly.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from typing import Callable

import grpc
import structlog

from modipick.core import ModelProfile
from modipick.core.input_sizes import square_size
from modipick.profiler.probe import ProbeFailed, Prober
from modipick.stores import AsyncProfileStore, StoreError
from modipick.v1 import common_pb2, executor_pb2, executor_pb2_grpc

log = structlog.get_logger("modipick.profiler.lifecycle")

# What the Executor reports for a model it can run now.
AVAILABLE_STATES = frozenset({common_pb2.MODEL_STATE_ELIGIBLE, common_pb2.MODEL_STATE_WARMING})


@dataclass(frozen=True, slots=True)
class LifecycleSettings:
    warmup_runs: int = 5
    probe_runs: int = 10
    reprobe_after_s: float = 60.0
    reprobe_runs: int = 3
    discovery_interval_s: float = 5.0
    jitter: float = 0.1  # +-10% on the discovery interval, so several Profilers do not beat in step


class ModelLifecycle:
    def __init__(self, store: AsyncProfileStore, prober: Prober, executor: executor_pb2_grpc.ExecutorServiceStub,
                 settings: LifecycleSettings = LifecycleSettings(), *, clock: Callable[[], float] = time.time,
                 rng: random.Random | None = None) -> None:
        self._store = store
        self._prober = prober
        self._executor = executor
        self.settings = settings
        self._clock = clock
        self._rng = rng or random.Random(0)
        self._ignored: set[tuple[str, int]] = set()
        self._listed_sizes: dict[tuple[str, int], int] = {}  # input sizes the Executor last listed
        self._busy: dict[tuple[str, int], asyncio.Task] = {}
        self._loop_task: asyncio.Task | None = None

    # -- registry ---------------------------------------------------------------------------------
    async def register(self, name: str, version: int, declared_accuracy: float, *,
                       warm: bool = True, eligible: bool = False, input_size: int = 0) -> ModelProfile:
        """Register as "warming" (warm it up now with `warm`, or in a later discovery round), or
        straight as "eligible" (no warm-up)."""
        self._ignored.discard((name, version))
        # a registration that states no input size (an admin's RegisterModel) takes the one the Executor lists
        input_size = input_size or self._listed_sizes.get((name, version), 0)
        profile = ModelProfile(name=name, version=version, declared_accuracy=declared_accuracy,
                               state="eligible" if eligible else "warming", input_size=input_size)
        created = await self._store.register(profile)
        log.info("model registered", model=profile.key, created=created, warm=warm and not eligible)
        if warm and not eligible:
            self._schedule_warm(name, version)
        return await self.profile(name, version) or profile

    async def deregister(self, name: str, version: int) -> bool:
        self._ignored.add((name, version))
        task = self._busy.pop((name, version), None)
        if task is not None:
            task.cancel()
        return await self._store.deregister(name, version)

    async def profile(self, name: str, version: int) -> ModelProfile | None:
        for p in await self._store.load_all():
            if p.name == name and p.version == version:
                return p
        return None

    # -- warm-up and probes -----------------------------------------------------------------------
    def _schedule_warm(self, name: str, version: int) -> None:
        key = (name, version)
        if key not in self._busy or self._busy[key].done():
            self._busy[key] = asyncio.create_task(self._warm(name, version), name=f"warm-{name}:{version}")

    async def _warm(self, name: str, version: int) -> bool:
        s = self.settings
        try:
            await self._prober.warm_up(name, version, s.warmup_runs)
            await self._prober.run(name, version, s.probe_runs, record=True)
            await self._store.set_state(name, version, "eligible")
            log.info("model eligible", model=f"{name}:{version}", warmup_runs=s.warmup_runs, probe_runs=s.probe_runs)
            return True
        except ProbeFailed as exc:
            log.warning("warm-up failed", model=f"{name}:{version}", error=str(exc))
            await self._set_state_quietly(name, version, "failing")
            return False
        except StoreError as exc:
            log.warning("warm-up not recorded: store unavailable", model=f"{name}:{version}", error=str(exc))
            return False
        finally:
            self._busy.pop((name, version), None)

    async def _reprobe(self, name: str, version: int) -> None:
        try:
            await self._prober.run(name, version, self.settings.reprobe_runs, record=True)
        except ProbeFailed as exc:
            log.warning("re-probe failed", model=f"{name}:{version}", error=str(exc))
            await self._set_state_quietly(name, version, "failing")
        finally:
            self._busy.pop((name, version), None)

    async def _set_state_quietly(self, name: str, version: int, state: str) -> None:
        try:
            await self._store.set_state(name, version, state)
        except StoreError as exc:
            log.warning("state not recorded: store unavailable", model=f"{name}:{version}", state=state,
                        error=str(exc))

    async def wait_idle(self, timeout_s: float = 60.0) -> None:
        """Until no warm-up or probe is running (tests, `modipick up`)."""
        deadline = time.monotonic() + timeout_s
        while self._busy and time.monotonic() < deadline:
            await asyncio.wait(list(self._busy.values()), timeout=max(0.0, deadline - time.monotonic()))

    # -- discovery --------------------------------------------------------------------------------
    async def sync_once(self) -> None:
        """One round: follow the Executor's model list, then re-probe stale profiles."""
        try:
            listed = await self._executor.ListModels(executor_pb2.ListModelsRequest(), timeout=10.0)
        except grpc.aio.AioRpcError as exc:
            log.warning("executor did not list its models", code=exc.code().name, details=exc.details())
            return
        profiles = {(p.name, p.version): p for p in await self._store.load_all()}
        loading = any(s.state == common_pb2.MODEL_STATE_LOADING for s in listed.models)
        for status in listed.models:
            key = (status.model.name, int(status.model.version))
            if not key[0] or key in self._ignored or key in self._busy:
                continue
            self._prober.learn_input(status)
            self._listed_sizes[key] = square_size(status.input_shape)
            known = profiles.get(key)
            if status.state in AVAILABLE_STATES:
                if known is None:
                    await self.register(key[0], key[1], status.declared_accuracy, warm=not loading,
                                        input_size=square_size(status.input_shape))
                elif known.state != "eligible" and not loading:
                    if known.state == "loading":
                        await self._set_state_quietly(key[0], key[1], "warming")
                    self._schedule_warm(*key)
            elif known is not None and known.state == "eligible":
                log.warning("model no longer available in the executor", model=known.key,
                            executor_state=common_pb2.ModelState.Name(status.state))
                await self._set_state_quietly(key[0], key[1], "loading")
        now = self._clock()
        for key, p in profiles.items():
            if (p.state == "eligible" and key not in self._busy and key not in self._ignored
                    and now - p.updated_at > self.settings.reprobe_after_s):
                log.info("re-probing a model not observed lately", model=p.key,
                         idle_s=round(now - p.updated_at, 1))
                self._busy[key] = asyncio.create_task(self._reprobe(*key), name=f"reprobe-{p.key}")

    def start(self) -> None:
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self._loop(), name="model-discovery")

    async def stop(self) -> None:
        tasks = [t for t in (self._loop_task, *self._busy.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._loop_task = None
        self._busy.clear()

    async def _loop(self) -> None:
        while True:
            try:
                await self.sync_once()
            except asyncio.CancelledError:
                raise
            except StoreError as exc:
                log.warning("discovery skipped: store unavailable", error=str(exc))
            except Exception:
                log.exception("discovery round failed")
            spread = self.settings.jitter * (2 * self._rng.random() - 1)
            await asyncio.sleep(self.settings.discovery_interval_s * (1 + spread))
