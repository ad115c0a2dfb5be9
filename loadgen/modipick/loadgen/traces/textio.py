"""Reading small text trace files with errors that name the file and line."""

from __future__ import annotations

import math
import os
from typing import Iterator

from modipick.loadgen.errors import LoadgenInputError


def read_lines(path: str | os.PathLike[str]) -> Iterator[tuple[int, str]]:
    """(1-based line number, stripped text) for every non-blank line."""
    source = os.fspath(path)
    try:
        with open(source, encoding="utf-8") as handle:
            for number, raw in enumerate(handle, start=1):
                text = raw.strip()
                if text:
                    yield number, text
    except FileNotFoundError:
        raise LoadgenInputError(source, "no such file") from None
    except IsADirectoryError:
        raise LoadgenInputError(source, "is a directory, expected a trace file") from None
    except UnicodeDecodeError:
        raise LoadgenInputError(source, "not a text file") from None
    except OSError as exc:
        raise LoadgenInputError(source, exc.strerror or str(exc)) from None


def parse_float(source: str, line: int, token: str, what: str) -> float:
    try:
        value = float(token)
    except ValueError:
        raise LoadgenInputError(source, f"{what} is not a number: {token!r}", line) from None
    if not math.isfinite(value):
        raise LoadgenInputError(source, f"{what} must be finite, got {token!r}", line)
    return value


def split_fields(text: str) -> list[str]:
    """Comma-, tab- or space-separated fields."""
    if "," in text:
        return [f.strip() for f in text.split(",")]
    return text.split()
