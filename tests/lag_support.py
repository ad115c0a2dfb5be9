"""How late this test process itself gets to run: a margin measured in the same test.

A timing bound such as "answered by its deadline plus 50 ms" fails on a busy machine when the
process asserting it is not scheduled, whatever the code under test does. `SchedulingLag` runs a
thread that sleeps in short steps and records the worst oversleep; a bound then allows that much
on top, so it still fails when the code is late but not when the machine is.
"""

from __future__ import annotations

import threading
import time


class SchedulingLag:
    def __init__(self, step_s: float = 0.005, stall_s: float = 0.02) -> None:
        self._step_s = step_s
        self._stall_s = stall_s
        self._worst_s = 0.0
        self._stalls: list[tuple[float, float]] = []  # (from, to) in time.monotonic() seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scheduling-lag", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            time.sleep(self._step_s)
            woke = time.monotonic()
            overslept = woke - began - self._step_s
            self._worst_s = max(self._worst_s, overslept)
            if overslept >= self._stall_s:
                self._stalls.append((woke - overslept, woke))

    @property
    def max_ms(self) -> float:
        """The longest this process waited past a wake-up so far, in ms."""
        return self._worst_s * 1000.0

    def stalled_during(self, start_s: float, end_s: float) -> bool:
        """Whether this process stalled (>= stall_s past a wake-up) between two time.monotonic() readings."""
        return any(begin < end_s and start_s < end for begin, end in self._stalls)

    def start(self) -> "SchedulingLag":
        self._thread.start()
        return self

    def stop(self) -> float:
        self._stop.set()
        self._thread.join(5)
        return self.max_ms

    def __enter__(self) -> "SchedulingLag":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
