"""Turning an ExecuteRequest's Input into the batch a model's signature takes.

Tensors are checked at once (cheap, before queueing): dtype, shape against the model's input,
finite values. Encoded images are decoded later, inside the execution slot (it costs CPU):
tf.io.decode_image to the model's channel count, resized to its height and width, pixels scaled
from 0..255 to the model's range (the digits models take 0..16).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numpy as np

from modipick.executor.backends.base import ModelInfo
from modipick.executor.errors import InvalidInput

DTYPES = {"float32": np.float32, "uint8": np.uint8}
MAX_IMAGE_PIXELS = 4096 * 4096  # decompression-bomb guard: a few KB of PNG can claim gigabytes
MAX_DIMS = 8


@dataclass(frozen=True, slots=True)
class PreparedInput:
    """Either a ready batch or encoded bytes still to decode."""

    batch: np.ndarray | None = None
    encoded: bytes = b""

    @property
    def needs_decoding(self) -> bool:
        return self.batch is None


def _shape_text(shape: tuple[int, ...] | list[int]) -> str:
    return "[" + ", ".join("?" if d < 0 else str(d) for d in shape) + "]"


def prepare(input_message, model: ModelInfo) -> PreparedInput:
    """Validate a modipick.v1.Input for `model`; raises InvalidInput with what is wrong."""
    kind = input_message.WhichOneof("kind")
    if kind is None:
        raise InvalidInput("input is empty: set input.encoded_image (PNG/JPEG bytes) or input.tensor")
    if kind == "encoded_image":
        if not input_message.encoded_image:
            raise InvalidInput("input.encoded_image is empty")
        return PreparedInput(encoded=bytes(input_message.encoded_image))
    return PreparedInput(batch=tensor_batch(input_message.tensor, model))


def tensor_batch(tensor, model: ModelInfo) -> np.ndarray:
    dtype = DTYPES.get(tensor.dtype)
    if dtype is None:
        raise InvalidInput(f"tensor dtype {tensor.dtype!r} is not supported; use one of {', '.join(DTYPES)}")
    if len(tensor.shape) > MAX_DIMS:
        raise InvalidInput(f"tensor shape has {len(tensor.shape)} dimensions; at most {MAX_DIMS} are accepted")
    shape = tuple(int(d) for d in tensor.shape)
    if any(d <= 0 for d in shape):
        raise InvalidInput(f"tensor shape {list(shape)} has a dimension <= 0")
    count = math.prod(shape)  # Python ints: a fuzzed shape must not wrap around int64
    expected_bytes = count * np.dtype(dtype).itemsize
    if len(tensor.content) != expected_bytes:
        raise InvalidInput(f"tensor content is {len(tensor.content)} bytes; shape {list(shape)} of {tensor.dtype} "
                           f"needs {expected_bytes}")
    example = model.image_shape
    batch_shape = _as_batch_shape(shape, example)
    if batch_shape is None:
        raise InvalidInput(f"model {model.name}:{model.version} expects one {model.input_name} of shape "
                           f"{_shape_text(example)} (or {_shape_text((1, *example))}), got {list(shape)}")
    array = np.frombuffer(tensor.content, dtype=dtype).reshape(batch_shape).astype(np.float32)
    if not np.isfinite(array).all():
        raise InvalidInput("tensor holds NaN or infinite values")
    return array


def _as_batch_shape(shape: tuple[int, ...], example: tuple[int, ...]) -> tuple[int, ...] | None:
    """The [1, ...] shape to feed, or None when `shape` is not one example of `example`."""
    def fits(candidate: tuple[int, ...]) -> bool:
        return len(candidate) == len(example) and all(e < 0 or e == c for c, e in zip(candidate, example))

    if fits(shape):
        return (1, *shape)
    if shape and shape[0] == 1 and fits(shape[1:]):
        return shape
    if len(example) == 3 and example[-1] == 1 and fits((*shape, 1)):  # (H, W) for one-channel models
        return (1, *shape, 1)
    return None


def _png_pixels(data: bytes) -> int | None:
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return width * height
    return None


def decode_image(data: bytes, model: ModelInfo) -> np.ndarray:
    """Decode PNG/JPEG/GIF/BMP into a float32 batch [1, H, W, C] for `model` (runs TensorFlow ops:
    call it off the event loop)."""
    import tensorflow as tf

    example = model.image_shape
    if len(example) != 3 or example[-1] not in (1, 3, 4):
        raise InvalidInput(f"model {model.name} takes {_shape_text(example)}, not an image; send a tensor")
    height, width, channels = example
    pixels = _png_pixels(data)
    try:
        if pixels is None and data[:3] == b"\xff\xd8\xff":
            h, w, *_ = tf.io.extract_jpeg_shape(data).numpy()
            pixels = int(h) * int(w)
        if pixels is not None and pixels > MAX_IMAGE_PIXELS:
            raise InvalidInput(f"image of {pixels} pixels is larger than the {MAX_IMAGE_PIXELS} allowed")
        image = tf.io.decode_image(data, channels=channels, expand_animations=False, dtype=tf.uint8)
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as exc:
        raise InvalidInput(f"undecodable image ({len(data)} bytes): {exc.message.splitlines()[0]}") from exc
    if int(tf.size(image)) > MAX_IMAGE_PIXELS * channels:
        raise InvalidInput(f"image of {int(tf.size(image)) // channels} pixels is larger than the "
                           f"{MAX_IMAGE_PIXELS} allowed")
    image = tf.cast(image, tf.float32)
    if height > 0 and width > 0 and tuple(image.shape[:2]) != (height, width):
        image = tf.image.resize(image, (height, width), antialias=True)
    scaled = image.numpy() * np.float32(model.image_value_max / 255.0)
    return scaled[None].astype(np.float32)
