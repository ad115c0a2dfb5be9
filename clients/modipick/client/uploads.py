"""The SDK's side of choosing the upload: encode the photo at the input size the pure core
(`modipick.core.uploads`) picks for this request, and learn the upload bandwidth from what the
Selector measured (`timings.upload_ms`).

Encoding needs Pillow (the `device` extra); the rest of the client does not.
"""

from __future__ import annotations

import io
import math
import threading
from dataclasses import dataclass, field
from typing import Any

from modipick.core.policies import Policy, make_policy
from modipick.core.uploads import (BandwidthEstimate, DeviceFallback, UploadChoice, UploadMenu, ValueMemo,
                                   choose_upload)

DEFAULT_JPEG_QUALITY = 90
ORIGINAL = 0  # input size of the variant that sends the photo as it is


def to_pil(image: Any) -> Any:
    """A PIL image from a PIL image, encoded bytes or an (H, W[, C]) uint8 array, in RGB."""
    from PIL import Image

    if isinstance(image, Image.Image):
        pil = image
    elif isinstance(image, (bytes, bytearray, memoryview)):
        pil = Image.open(io.BytesIO(bytes(image)))
    else:
        import numpy as np

        arr = np.asarray(image)
        if arr.dtype != np.uint8:
            raise ValueError(f"an image array must be uint8 pixels, got {arr.dtype}")
        pil = Image.fromarray(arr)
    return pil if pil.mode == "RGB" else pil.convert("RGB")


def resize_square(image: Any, size: int) -> Any:
    """The centre square of `image`, scaled to size x size (the input a square model takes)."""
    from PIL import Image

    pil = to_pil(image)
    w, h = pil.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    # Downscaling: an area average (BOX), antialiased and about 40 % less CPU than bilinear
    # from a camera-sized frame; upscaling: bilinear. The square is resized in place (`box`), not
    # cropped into a copy first.
    return pil.resize((size, size), Image.BOX if size < side else Image.BILINEAR,
                      box=(left, top, left + side, top + side))


def encode_jpeg(image: Any, size: int, quality: int = DEFAULT_JPEG_QUALITY) -> bytes:
    """JPEG bytes of `image` at `size` px (0: at its own size, re-encoded only when not already bytes)."""
    if size == ORIGINAL and isinstance(image, (bytes, bytearray, memoryview)):
        return bytes(image)
    pil = to_pil(image) if size == ORIGINAL else resize_square(image, size)
    out = io.BytesIO()
    pil.save(out, "JPEG", quality=quality)
    return out.getvalue()


@dataclass(frozen=True, slots=True)
class PlannedUpload:
    payload: bytes
    choice: UploadChoice

    @property
    def input_size(self) -> int:
        return self.choice.variant.input_size


@dataclass
class UploadPlanner:
    """Per client: the menu of input sizes, the policy the Selector runs, the device's own model,
    and the bandwidth learned from the uploads the Selector measured. Safe to share between threads."""

    menu: UploadMenu
    policy: Policy = field(default_factory=lambda: make_policy("risk_aware"))
    device: DeviceFallback = field(default_factory=DeviceFallback)
    reply_ms: float = 20.0       # the reply leg the choice budgets for
    bandwidth: BandwidthEstimate = field(default_factory=BandwidthEstimate)
    quality: int = DEFAULT_JPEG_QUALITY
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _memo: ValueMemo = field(default_factory=ValueMemo, repr=False)
    _memo_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def choose(self, sla_ms: float) -> UploadChoice:
        with self._lock:
            bandwidth = self.bandwidth
        with self._memo_lock:
            return choose_upload(self.menu, bandwidth, sla_ms, self.policy, return_ms=self.reply_ms,
                                 device=self.device, memo=self._memo)

    def plan(self, image: Any, sla_ms: float) -> PlannedUpload:
        """Choose the input size for this request and encode `image` at it."""
        choice = self.choose(sla_ms)
        return PlannedUpload(encode_jpeg(image, choice.variant.input_size, self.quality), choice)

    def observe(self, payload_bytes: int, upload_ms: float) -> None:
        """Learn from one upload: `upload_ms` as the Selector measured it (InferResult.timings)."""
        if not (math.isfinite(upload_ms) and upload_ms > 0):
            return
        with self._lock:
            self.bandwidth = self.bandwidth.observe(payload_bytes, upload_ms)
