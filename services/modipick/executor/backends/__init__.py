"""The Executor's backends, chosen by name. Each is imported only when chosen (and pulls in TensorFlow
lazily); they share the types of modipick.executor.backends.base, which imports none of them."""

from __future__ import annotations

from typing import Any

from modipick.executor.backends.base import Backend

BACKENDS = ("embedded", "tfserving", "oip")


def make_backend(name: str, **options: Any) -> Backend:
    """Backends by name, imported only when chosen (each pulls in TensorFlow lazily)."""
    if name == "embedded":
        from modipick.executor.backends.embedded import EmbeddedBackend

        return EmbeddedBackend(**options)
    if name == "tfserving":
        from modipick.executor.backends.tfserving import TFServingBackend

        return TFServingBackend(**options)
    if name == "oip":
        from modipick.executor.backends.oip import OipBackend

        return OipBackend(**options)
    raise ValueError(f"unknown executor backend {name!r}; choose one of {', '.join(BACKENDS)}")
