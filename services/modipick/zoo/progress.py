"""A plain progress line on stderr for long builds ("[2/5] cnn-small: trained, 97.3% (4.1 s)")."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, total: int, *, stream: TextIO | None = None, clock=time.monotonic) -> None:
        self.total = total
        self.done = 0
        self.stream = stream if stream is not None else sys.stderr
        self._clock = clock
        self._started = clock()

    def step(self, what: str) -> None:
        """Announce the item being worked on (before the work)."""
        self._say(f"[{self.done + 1}/{self.total}] {what} ...")

    def finish(self, what: str) -> None:
        self.done += 1
        self._say(f"[{self.done}/{self.total}] {what}")

    def close(self, summary: str) -> None:
        self._say(f"{summary} in {self._clock() - self._started:.1f} s")

    def _say(self, line: str) -> None:
        print(line, file=self.stream, flush=True)
