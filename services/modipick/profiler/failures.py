"""Models that keep failing leave the eligible set.

The Executors report every failed user execution (Observation.failed, with the status it ended
with). A model whose executions fail `threshold` times in a row — failures of the model itself:
not timeouts, overload, cancellations or bad input, which say nothing about the model — is set
to "failing"; the Selectors stop offering it at their next refresh. Discovery re-warms failing
models that the Executor still lists as available (warm-up runs, then recorded probe runs): the
first probe round that passes makes the model eligible again, and ProbeModel does the same on
demand.
"""

from __future__ import annotations

import collections

import structlog

from modipick.stores import AsyncProfileStore, StoreError

log = structlog.get_logger("modipick.profiler.failures")

# Ends of an execution that are not the model's fault.
NOT_MODEL_FAULTS = frozenset({"DEADLINE_EXCEEDED", "CANCELLED", "RESOURCE_EXHAUSTED", "INVALID_ARGUMENT"})

Key = tuple[str, int]


class FailureTracker:
    def __init__(self, store: AsyncProfileStore, *, threshold: int = 3) -> None:
        if threshold < 1:
            raise ValueError(f"failure threshold must be >= 1, got {threshold}")
        self._store = store
        self.threshold = threshold
        self._streak: collections.Counter[Key] = collections.Counter()
        self._crossed: set[Key] = set()
        self.marked_failing = 0

    def saw(self, name: str, version: int, *, failed: bool, error_code: str = "") -> None:
        """One reported execution (of a known model name and resolved version)."""
        key = (name, version)
        if not failed:
            self._streak.pop(key, None)
            return
        if error_code in NOT_MODEL_FAULTS:
            return
        self._streak[key] += 1
        if self._streak[key] == self.threshold:
            self._crossed.add(key)

    async def apply(self) -> list[Key]:
        """Set the models that crossed the threshold to "failing"; returns them."""
        crossed, self._crossed = sorted(self._crossed), set()
        done = []
        for name, version in crossed:
            try:
                known = await self._store.set_state(name, version, "failing")
            except StoreError as exc:
                log.warning("could not mark a failing model", model=f"{name}:{version}", error=str(exc))
                self._streak[(name, version)] = self.threshold - 1  # the next failure tries again
                continue
            self._streak.pop((name, version), None)  # counted afresh once it is back
            if known:
                self.marked_failing += 1
                done.append((name, version))
                log.warning("model keeps failing: left the eligible set until a probe passes",
                            model=f"{name}:{version}", failures_in_a_row=self.threshold)
        return done
