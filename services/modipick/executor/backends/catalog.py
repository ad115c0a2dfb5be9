"""Shared bookkeeping of the backends: which versions of which models are served, in which state,
and how a model reference picks one of them (TF Serving's rules)."""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Mapping

from modipick.executor.backends.base import AVAILABLE, LOADING, ModelInfo, ModelRef
from modipick.executor.errors import ModelNotFound, ModelUnavailable
from modipick.zoo.manifest import ModelEntry, try_read_manifest


def pick_version(ref: ModelRef, versions: Mapping[int, ModelInfo],
                 labels: Mapping[str, int] | None = None) -> ModelInfo:
    """version > 0: exactly that one; a label: the version it points at; else the latest AVAILABLE."""
    if not versions:
        raise ModelNotFound(f"model {ref.name!r} is not served")
    if ref.version_label:
        if ref.version_label not in (labels or {}):
            known = ", ".join(sorted(labels or {})) or "none"
            raise ModelNotFound(f"model {ref.name!r} has no version label {ref.version_label!r} (labels: {known})")
        wanted = (labels or {})[ref.version_label]
    elif ref.version > 0:
        wanted = ref.version
    else:
        ready = [v for v, info in versions.items() if info.state == AVAILABLE]
        if ready:
            return versions[max(ready)]
        states = ", ".join(f"{v}: {info.state}" for v, info in sorted(versions.items()))
        raise ModelUnavailable(f"model {ref.name!r} has no AVAILABLE version yet ({states})")
    info = versions.get(wanted)
    if info is None:
        served = ", ".join(str(v) for v in sorted(versions))
        raise ModelNotFound(f"model {ref.name!r} has no version {wanted} (served: {served})")
    if info.state != AVAILABLE:
        detail = f": {info.detail}" if info.detail else ""
        raise ModelUnavailable(f"model {ref.name}:{wanted} is {info.state}{detail}")
    return info


def pool_entries(model_base: str | os.PathLike[str] | None) -> dict[str, ModelEntry]:
    """Manifest entries by model name (declared accuracy, labels, pixel range); empty without one."""
    manifest = try_read_manifest(model_base) if model_base else None
    return {m.name: m for m in manifest.models} if manifest else {}


def with_manifest(info: ModelInfo, entry: ModelEntry | None) -> ModelInfo:
    """What the manifest says about a model; the signature (once loaded) has the last word on
    input name, shape and dtype."""
    if entry is None:
        return info
    return replace(info, declared_accuracy=entry.declared_accuracy, labels=entry.labels,
                   image_value_max=entry.image_value_max, input_name=entry.input_name,
                   input_shape=entry.input_shape, input_dtype=entry.input_dtype, output_name=entry.output_name)


def loading(name: str, version: int, entry: ModelEntry | None) -> ModelInfo:
    return with_manifest(ModelInfo(name=name, version=version, state=LOADING), entry)


def remote_model_names(backend: str, names: list[str], base, entries) -> list[str]:
    """The models a remote backend (TF Serving, an OIP server) serves: the explicit list, else those
    its --model-base names (models.config or manifest.json)."""
    if names:
        return names
    if base is None:
        raise ValueError(f"the {backend} backend needs --model-base (models.config or manifest.json naming "
                         "the models) or an explicit model list")
    from modipick.zoo.layout import served_models

    return [m.name for m in served_models(base)] or list(entries)


def open_channel(channel, channel_factory, target: str):
    """The remote backend's channel: the one given, else from its factory, else a plain aio channel."""
    if channel is not None:
        return channel
    if channel_factory is not None:
        return channel_factory(target)
    from modipick.runtime.channels import aio_channel

    return aio_channel(target)


async def refresh_forever(refresh, interval_s: float, target: str, log) -> None:
    """Call `refresh` every `interval_s`, whatever one round did (logged)."""
    import asyncio

    while True:
        await asyncio.sleep(interval_s)
        try:
            await refresh()
        except Exception as exc:  # keep refreshing whatever one round did
            log.warning("status refresh failed", target=target, error=str(exc))

