"""Progress: a redrawn bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import io

from modipick.loadgen.progress import NoProgress, StreamProgress, make_progress


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_bar_redraws_one_line():
    stream, clock = io.StringIO(), Clock()
    bar = StreamProgress(stream, bar=True, clock=clock)
    bar.start("run", 10)
    clock.t = 1.0
    bar.update(sent=5, done=4, met=2, lag_p99_ms=0.5)
    clock.t = 2.0
    bar.update(sent=10, done=10, met=9, lag_p99_ms=0.7)
    bar.finish()
    text = stream.getvalue()
    assert text.count("\r") == 2 and text.endswith("\n") and text.count("\n") == 1
    assert "[" + "#" * 28 + "]" in text and "10/10 done" in text and "SLA met 90.0%" in text


def test_plain_lines_are_rate_limited_but_the_last_is_always_printed():
    stream, clock = io.StringIO(), Clock()
    plain = StreamProgress(stream, bar=False, plain_every_s=5.0, clock=clock)
    plain.start("run", 3)
    clock.t = 1.0
    plain.update(1, 1, 1, 0.1)   # too soon: skipped
    clock.t = 6.0
    plain.update(2, 2, 2, 0.1)
    clock.t = 6.5
    plain.update(3, 3, 3, 0.1)   # done: printed even though soon
    lines = stream.getvalue().splitlines()
    assert lines[0] == "run: 3 requests" and len(lines) == 3 and "\r" not in stream.getvalue()
    assert lines[-1].startswith("run: 3/3 done")


def test_auto_mode_picks_by_terminal():
    assert isinstance(make_progress("none"), NoProgress)
    assert make_progress("auto", io.StringIO())._bar is False
