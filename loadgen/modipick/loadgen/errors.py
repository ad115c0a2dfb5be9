"""Errors raised for bad user input (trace files, specs, flags); the CLI prints them as one line."""

from __future__ import annotations


class LoadgenInputError(ValueError):
    """Bad input, located: `file:line: message` (line omitted when it is about the whole file)."""

    def __init__(self, source: str, message: str, line: int | None = None) -> None:
        self.source = source
        self.line = line
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line is not None else self.source
        return f"{where}: {self.message}"
