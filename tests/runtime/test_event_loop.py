"""--event-loop: uvloop where installed (auto), the standard loop on request, and clear refusals."""

from __future__ import annotations

import argparse
import asyncio
import sys

import pytest

from modipick.runtime import event_loop


async def _running_loop_name() -> str:
    return event_loop.loop_name(asyncio.get_running_loop())


@pytest.mark.parametrize("name,expected", [("auto", "uvloop"), ("uvloop", "uvloop"), ("asyncio", "asyncio")])
def test_run_uses_the_loop_asked_for(name: str, expected: str) -> None:
    assert event_loop.run_on(name, _running_loop_name) == expected


def test_auto_falls_back_to_asyncio_without_uvloop(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop raises ImportError
    assert event_loop.loop_factory("auto") is None
    assert event_loop.run_on("auto", _running_loop_name) == "asyncio"
    with pytest.raises(ValueError, match="uvloop is not installed"):
        event_loop.loop_factory("uvloop")
    with pytest.raises(argparse.ArgumentTypeError, match="uvloop is not installed"):
        event_loop.event_loop_option("uvloop")


def test_unknown_loops_are_refused_by_name() -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="one of auto, asyncio, uvloop, got 'trio'"):
        event_loop.event_loop_option("trio")
    assert event_loop.event_loop_option(" UVLoop ") == "uvloop"
