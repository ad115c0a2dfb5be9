"""Fixtures for the simulator tests: run `modipick sim` in-process and capture its output (plain
helpers: sim_support.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from modipick.sim.cli import main


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


@pytest.fixture
def run_sim(capsys):
    def run(*argv: str) -> CliResult:
        code = main(list(argv))
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture
def write_csv(tmp_path: Path):
    def write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write
