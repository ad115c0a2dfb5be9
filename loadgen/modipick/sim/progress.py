"""A progress line on stderr for long runs: rewritten in place on a terminal, else a line every few s."""

from __future__ import annotations

import sys
import time
from typing import Callable, TextIO


class Progress:
    def __init__(self, total: int, label: str, *, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic, every_s: float = 5.0) -> None:
        self.total, self.label, self.done = max(total, 1), label, 0
        self.stream = stream if stream is not None else sys.stderr
        self.clock, self.every_s = clock, every_s
        self.started = self.last = clock()
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def advance(self, amount: int, note: str = "") -> None:
        self.done += amount
        now = self.clock()
        if self.done >= self.total or now - self.last >= (0.2 if self.tty else self.every_s):
            self.last = now
            self._write(note, final=self.done >= self.total)

    def _write(self, note: str, final: bool) -> None:
        elapsed = self.clock() - self.started
        pct = 100.0 * self.done / self.total
        eta = elapsed * (self.total - self.done) / self.done if self.done else 0.0
        line = f"{self.label}: {pct:5.1f}% {self.done}/{self.total} decisions, {elapsed:.0f}s, eta {eta:.0f}s {note}"
        if self.tty:
            self.stream.write("\r" + line[:120].ljust(120) + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


class NoProgress(Progress):
    def __init__(self) -> None:
        super().__init__(1, "")

    def advance(self, amount: int, note: str = "") -> None:
        pass
