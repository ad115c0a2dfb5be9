"""Turning what the caller holds (encoded image bytes or a numpy array) into a modipick.v1.Input.

Encoded images are sent as they are: the Executor decodes and resizes them, so this package needs
neither PIL nor TensorFlow. Arrays are one image, sent as a tensor [1, H, W, C]: (H, W) gains a
channel axis, (H, W, C) a batch axis; float arrays travel as float32, uint8 stays uint8.
"""

from __future__ import annotations

from typing import Any

from modipick.v1 import common_pb2

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"


def image_kind(data: bytes) -> str | None:
    if data.startswith(PNG_MAGIC):
        return "png"
    if data.startswith(JPEG_MAGIC):
        return "jpeg"
    return None


def to_input(image: Any) -> common_pb2.Input:
    if isinstance(image, common_pb2.Input):
        return image
    if isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
        if not data:
            raise ValueError("image is empty")
        if image_kind(data) is None:
            raise ValueError("image bytes are neither PNG nor JPEG (send a numpy array for raw pixels)")
        return common_pb2.Input(encoded_image=data)
    import numpy as np

    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be PNG/JPEG bytes or a numpy array, got {type(image).__name__}")
    if image.ndim == 2:
        image = image[None, :, :, None]
    elif image.ndim == 3:
        image = image[None]
    elif not (image.ndim == 4 and image.shape[0] == 1):
        raise ValueError(f"array must be one image (H,W), (H,W,C) or (1,H,W,C), got shape {image.shape}")
    if image.dtype != np.uint8:
        image = image.astype(np.float32, copy=False)
        if not np.isfinite(image).all():
            raise ValueError("array holds NaN or infinite values")
    dtype = "uint8" if image.dtype == np.uint8 else "float32"
    tensor = common_pb2.Tensor(dtype=dtype, shape=list(image.shape),
                               content=np.ascontiguousarray(image).tobytes())
    return common_pb2.Input(tensor=tensor)
