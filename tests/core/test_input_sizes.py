"""Which models take a request's input: header-read image sizes and the candidate filter."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from modipick.core import Candidate
from modipick.core.input_sizes import candidates_for_input, image_dimensions, image_input_size, square_size


def encoded(width: int, height: int, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (120, 30, 200)).save(out, format=fmt, **options)
    return out.getvalue()


@pytest.mark.parametrize("fmt,options", [("PNG", {}), ("JPEG", {"quality": 85}),
                                         ("JPEG", {"progressive": True}), ("JPEG", {"optimize": True})])
def test_the_header_gives_width_and_height_without_decoding(fmt, options):
    assert image_dimensions(encoded(160, 96, fmt, **options)) == (160, 96)
    assert image_input_size(encoded(160, 96, fmt, **options)) == 96  # the shorter side: no upscaling


def test_a_jpeg_with_exif_before_its_frame_header_is_read():
    exif = Image.Exif()
    exif[0x010E] = "x" * 3000  # ImageDescription: an APP1 segment of ~3 KB ahead of SOF
    data = encoded(224, 224, "JPEG", exif=exif.tobytes())
    assert data.index(b"\xff\xe1") < data.index(b"\xff\xc0")
    assert image_dimensions(data) == (224, 224)


@pytest.mark.parametrize("data", [b"", b"not an image", b"\x89PNG\r\n\x1a\n\x00\x00", b"\xff\xd8\xff",
                                  b"\xff\xd8\xff\xe0\x00\x10JFIF", b"\xff\xd8\xff\xda\x00\x02"])
def test_anything_else_has_no_size(data):
    assert image_dimensions(data) is None and image_input_size(data) == 0


def test_a_truncated_jpeg_frame_header_has_no_size():
    data = encoded(64, 64, "JPEG")
    sof = data.index(b"\xff\xc0")
    assert image_dimensions(data[:sof + 6]) is None


@pytest.mark.parametrize("shape,size", [([1, 128, 128, 3], 128), ([-1, 224, 224, 3], 224), ([28, 28, 1], 28),
                                        ([1, 96, 128, 3], 0), ([1, 784], 0), ([-1, -1, -1, 3], 0), ([], 0)])
def test_square_size_of_a_shape(shape, size):
    assert square_size(shape) == size


def cands(*names: str) -> tuple[Candidate, ...]:
    return tuple(Candidate(n, 1, 50.0, 10.0, 1.0) for n in names)


SIZED = cands("m96", "m128", "m224", "anysize")
SIZES = (96, 128, 224, 0)


@pytest.mark.parametrize("input_size,names", [
    (96, ["m96", "anysize"]),
    (160, ["m96", "m128", "anysize"]),   # an image is scaled down to each model's size, never up
    (224, ["m96", "m128", "m224", "anysize"]),
    (0, ["m96", "m128", "m224", "anysize"]),  # unknown size: every model
])
def test_an_image_fits_the_models_of_its_size_or_less(input_size, names):
    assert [c.name for c in candidates_for_input(SIZED, SIZES, input_size)] == names


def test_a_tensor_fits_only_the_models_of_exactly_its_size():
    assert [c.name for c in candidates_for_input(SIZED, SIZES, 128, exact=True)] == ["m128", "anysize"]


def test_where_no_model_takes_the_input_every_model_stays_a_candidate():
    only_sized = SIZED[:3]
    assert candidates_for_input(only_sized, SIZES[:3], 64) == only_sized
    assert candidates_for_input(only_sized, SIZES[:3], 160, exact=True) == only_sized
