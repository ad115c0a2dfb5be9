"""Live progress on stderr: a redrawn bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import Protocol, TextIO


class Progress(Protocol):
    def start(self, label: str, total: int) -> None: ...

    def update(self, sent: int, done: int, met: int, lag_p99_ms: float) -> None: ...

    def finish(self) -> None: ...


class NoProgress:
    def start(self, label: str, total: int) -> None:
        pass

    def update(self, sent: int, done: int, met: int, lag_p99_ms: float) -> None:
        pass

    def finish(self) -> None:
        pass


class StreamProgress:
    """`bar=True` redraws one line with \\r (terminal); otherwise a line every `plain_every_s`."""

    WIDTH = 28

    def __init__(self, stream: TextIO = sys.stderr, *, bar: bool | None = None, plain_every_s: float = 5.0,
                 clock=time.monotonic) -> None:
        self._stream = stream
        self._bar = stream.isatty() if bar is None else bar
        self._every = 0.2 if self._bar else plain_every_s
        self._clock = clock
        self._label = ""
        self._total = 0
        self._started = 0.0
        self._last = 0.0
        self._line = ""

    def start(self, label: str, total: int) -> None:
        self._label, self._total = label, total
        self._started = self._last = self._clock()
        if not self._bar:
            print(f"{label}: {total} requests", file=self._stream, flush=True)

    def update(self, sent: int, done: int, met: int, lag_p99_ms: float) -> None:
        now = self._clock()
        if now - self._last < self._every and done < self._total:
            return
        self._last = now
        elapsed = max(now - self._started, 1e-9)
        text = (f"{done}/{self._total} done, {sent / elapsed:.0f} req/s sent, "
                f"SLA met {100.0 * met / done if done else 0.0:.1f}%, lag p99 {lag_p99_ms:.2f} ms")
        if self._bar:
            filled = int(self.WIDTH * done / self._total) if self._total else self.WIDTH
            self._line = f"\r{self._label} [{'#' * filled}{'.' * (self.WIDTH - filled)}] {text}"
            self._stream.write(self._line + "\033[K")
            self._stream.flush()
        else:
            print(f"{self._label}: {text}", file=self._stream, flush=True)

    def finish(self) -> None:
        if self._bar:
            self._stream.write("\n")
            self._stream.flush()


def make_progress(mode: str, stream: TextIO = sys.stderr) -> Progress:
    """mode: auto (bar on a terminal, plain lines otherwise) | bar | plain | none."""
    if mode == "none":
        return NoProgress()
    if mode not in ("auto", "bar", "plain"):
        raise ValueError(f"unknown progress mode {mode!r}; use auto, bar, plain or none")
    return StreamProgress(stream, bar=None if mode == "auto" else mode == "bar")
