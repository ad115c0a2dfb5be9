"""What every executor backend offers, and the value objects it speaks in.

A backend knows which models (and versions) it serves and in which state, resolves a request's
model reference (name + version 0 = latest AVAILABLE | version | version label) to one concrete
version, and runs a ready batch through that version's signature. Input decoding, queueing and
deadlines are the service's job, so backends stay small.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

AVAILABLE = "AVAILABLE"   # TF Serving's ModelVersionStatus.State names
LOADING = "LOADING"
UNAVAILABLE = "UNAVAILABLE"  # failed to load, unloading or ended

DEFAULT_SIGNATURE = "serving_default"


@dataclass(frozen=True, slots=True)
class ModelRef:
    name: str
    version: int = 0          # 0 = latest AVAILABLE
    version_label: str = ""

    def __str__(self) -> str:
        if self.version_label:
            return f"{self.name}@{self.version_label}"
        return f"{self.name}:{self.version}" if self.version else self.name


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One served version: its state and what its signature expects."""

    name: str
    version: int
    state: str
    input_name: str = "image"
    input_shape: tuple[int, ...] = ()   # -1 for unknown (batch) dimensions
    input_dtype: str = "float32"
    output_name: str = "probabilities"
    declared_accuracy: float = 0.0       # percent, from the pool manifest
    labels: tuple[str, ...] = ()
    image_value_max: float = 255.0       # encoded 0..255 pixels are scaled to 0..image_value_max
    detail: str = ""                     # why a version is not AVAILABLE

    @property
    def available(self) -> bool:
        return self.state == AVAILABLE

    @property
    def image_shape(self) -> tuple[int, ...]:
        """One example's shape (the input shape without its batch dimension)."""
        return self.input_shape[1:]


@runtime_checkable
class Backend(Protocol):
    name: str

    async def start(self) -> None:
        """Begin serving (start loading / connect); returns without waiting for models."""

    async def models(self) -> list[ModelInfo]:
        """Every served version with its current state (fresh enough for ListModels)."""

    async def resolve(self, ref: ModelRef, *, timeout_s: float | None = None) -> ModelInfo:
        """The AVAILABLE version `ref` names; ModelNotFound / ModelUnavailable otherwise."""

    async def predict(self, model: ModelInfo, batch: np.ndarray, *, signature: str = DEFAULT_SIGNATURE,
                      timeout_s: float | None = None, version_label: str = "") -> tuple[int, np.ndarray]:
        """Run one batch on `model` (or, given the label it was resolved from, on what the label
        names now); returns (version that ran, output [batch, classes] as float32)."""

    async def close(self) -> None: ...
