"""Which models can take a request's input: its size read cheaply (a PNG/JPEG header, a tensor's
shape), matched against the square input size each model declares.

An encoded image is scaled by the Executor to each model's size, so a model fits when it takes the
image's size or less (no upscaling: the same rule the upload chooser plans with,
modipick.core.uploads.models_for_size). A tensor is fed as it is, so it fits only the models that
take exactly its size. A model that declares no size (0) fits every input; where no model fits,
every model stays a candidate (the Executor resizes an image; a tensor's mismatch is its own error).

Pure: parses bytes handed in, no I/O.
"""

from __future__ import annotations

import struct
from typing import Sequence

from modipick.core.profiles import Candidate

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (SOF0..SOF15 without DHT C4, JPG C8, DAC CC) carry height and width
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM, RST0..7: no length field
_MAX_JPEG_SCAN = 1 << 20  # a frame header further in than 1 MiB is not worth finding on the request path


def image_dimensions(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR or a JPEG's start-of-frame segment, without decoding the
    pixels; None for anything else or a truncated header."""
    if data[:8] == _PNG_SIGNATURE and len(data) >= 24 and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return (width, height) if width and height else None
    if data[:2] != b"\xff\xd8":
        return None
    i, end = 2, min(len(data), _MAX_JPEG_SCAN)
    while i + 4 <= end:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _JPEG_STANDALONE:
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image / start of scan before any frame header
            return None
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        if marker in _JPEG_SOF:
            if i + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[i + 5:i + 9])
            return (width, height) if width and height else None
        i += 2 + length
    return None


def image_input_size(data: bytes) -> int:
    """The px an encoded image offers every model without upscaling (its shorter side); 0 unknown."""
    dims = image_dimensions(data)
    return min(dims) if dims else 0


def square_size(shape: Sequence[int]) -> int:
    """H of an image shape [H, W, C] or [batch, H, W, C] with H == W > 0; else 0 (no square size)."""
    dims = tuple(int(d) for d in shape)
    if len(dims) == 4:
        dims = dims[1:]
    if len(dims) == 3 and dims[0] == dims[1] and dims[0] > 0:
        return dims[0]
    return 0


def candidates_for_input(candidates: Sequence[Candidate], sizes: Sequence[int], input_size: int, *,
                         exact: bool = False) -> Sequence[Candidate]:
    """The candidates (each with its declared size in `sizes`, 0: none) that take an input of
    `input_size` px: those of that size or less (`exact`: that size only) and those declaring none.
    All of them when the input size is unknown (0) or no candidate takes it."""
    if input_size <= 0:
        return candidates
    fit = tuple(c for c, size in zip(candidates, sizes)
                if size == 0 or size == input_size or (not exact and size < input_size))
    return fit or candidates
