"""Labelled inputs for requests, behind one Protocol.

`DigitsSource` sends scikit-learn's bundled digits as the contract's raw tensors
(float32 [1, 8, 8, 1], pixel values 0..16); `ImageSource` sends real PNG photos-to-be (synthetic
RGB scenes, unlabelled) that the Executor decodes and resizes for any model, e.g. the
imagenet-arch pool; `PayloadSource` sends an opaque encoded image of a chosen size without a label
(to put real 330 KB requests on a shaped link in front of a server that does not decode them).
"""

from __future__ import annotations

import random
import struct
import zlib
from typing import NamedTuple, Protocol

from modipick.v1 import common_pb2


class Sample(NamedTuple):
    input: common_pb2.Input
    label: int | None
    nbytes: int  # serialized size of the input message


class DatasetSource(Protocol):
    name: str

    def __len__(self) -> int: ...

    def sample(self, index: int) -> Sample:
        """The input for request number `index` (the same index gives the same input)."""
        ...


def _sample(message: common_pb2.Input, label: int | None) -> Sample:
    return Sample(message, label, message.ByteSize())


class DigitsSource:
    name = "digits"

    def __init__(self, *, seed: int = 0, limit: int | None = None) -> None:
        from sklearn.datasets import load_digits  # lazily: only runs that send digits need scikit-learn

        digits = load_digits()
        order = list(range(len(digits.target)))
        random.Random(seed).shuffle(order)  # a seeded order, identical for every policy compared
        if limit is not None:
            order = order[:limit]
        images = digits.images.astype("float32")
        self._samples = [
            _sample(common_pb2.Input(tensor=common_pb2.Tensor(dtype="float32", shape=[1, 8, 8, 1],
                                                              content=images[i].tobytes())),
                    int(digits.target[i]))
            for i in order
        ]

    def __len__(self) -> int:
        return len(self._samples)

    def sample(self, index: int) -> Sample:
        return self._samples[index % len(self._samples)]


class PayloadSource:
    name = "payload"

    def __init__(self, nbytes: int = 330_000, *, seed: int = 0) -> None:
        if nbytes < 0:
            raise ValueError(f"payload size must be >= 0 bytes, got {nbytes}")
        # Random bytes, so nothing on the path can compress the request below its size.
        self._sample = _sample(common_pb2.Input(encoded_image=random.Random(seed).randbytes(nbytes)), None)

    def __len__(self) -> int:
        return 1

    def sample(self, index: int) -> Sample:
        return self._sample


def encode_png(rgb) -> bytes:
    """A [H, W, 3] uint8 array as an 8-bit RGB PNG (zlib only: no imaging library needed)."""
    import numpy as np

    pixels = np.ascontiguousarray(rgb, dtype=np.uint8)
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"expected an [H, W, 3] image, got shape {pixels.shape}")
    height, width, _ = pixels.shape
    rows = np.concatenate([np.zeros((height, 1), np.uint8), pixels.reshape(height, width * 3)], axis=1)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6))
            + chunk(b"IEND", b""))


def render_scenes(size: int = 224, *, count: int = 8, seed: int = 0) -> list:
    """`count` synthetic RGB scenes (smooth colour fields plus grain) as [size, size, 3] uint8 arrays."""
    import numpy as np

    if not 8 <= size <= 4096:
        raise ValueError(f"image size must be 8..4096 pixels, got {size}")
    if count < 1:
        raise ValueError(f"image count must be >= 1, got {count}")
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    scenes = []
    for _ in range(count):
        fx, fy, phase = rng.uniform(0.5, 3.0, 3), rng.uniform(0.5, 3.0, 3), rng.uniform(0, 6.3, 3)
        field = 127.5 + 100.0 * np.sin(2 * np.pi * (fx * x[..., None] + fy * y[..., None]) + phase)
        grain = rng.normal(0.0, 12.0, (size, size, 3))
        scenes.append(np.clip(field + grain, 0, 255).astype(np.uint8))
    return scenes


class ImageSource:
    """`count` distinct synthetic RGB scenes (`render_scenes`), `size` x `size` pixels,
    PNG-encoded; no labels (the imagenet-arch pool's random weights make any label
    meaningless, so runs are scored by declared accuracy)."""

    name = "image"

    def __init__(self, size: int = 224, *, count: int = 8, seed: int = 0) -> None:
        self._samples = [_sample(common_pb2.Input(encoded_image=encode_png(image)), None)
                         for image in render_scenes(size, count=count, seed=seed)]

    def __len__(self) -> int:
        return len(self._samples)

    def sample(self, index: int) -> Sample:
        return self._samples[index % len(self._samples)]


DATASETS = ("digits", "image", "payload")


def make_dataset(name: str, *, seed: int = 0, payload_bytes: int = 330_000, image_size: int = 224) -> DatasetSource:
    if name == "digits":
        return DigitsSource(seed=seed)
    if name == "image":
        return ImageSource(image_size, seed=seed)
    if name == "payload":
        return PayloadSource(payload_bytes, seed=seed)
    raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
