"""The on-device export: a SavedModel of the pool as a `.tflite` flatbuffer with dynamic-range
quantization (weights int8, activations float), what the client SDK's LiteRT runner loads.
TensorFlow imported lazily."""

from __future__ import annotations

import os
from pathlib import Path

TFLITE_DIR = "tflite"


def tflite_path(base: Path, name: str) -> Path:
    return base / TFLITE_DIR / f"{name}.tflite"


def export_tflite(saved_model_dir: str | os.PathLike[str], out: Path, *, quantize: bool = True) -> Path:
    """Convert the SavedModel's serving signature; written beside `out`, then renamed."""
    import tensorflow as tf

    # From the loaded signature, so the variables are frozen into constants (from_saved_model keeps
    # them as resource variables, which LiteRT leaves uninitialised: every output NaN).
    loaded = tf.saved_model.load(str(saved_model_dir))
    converter = tf.lite.TFLiteConverter.from_concrete_functions([loaded.signatures["serving_default"]], loaded)
    if quantize:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    flatbuffer = converter.convert()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".tmp-{out.name}-{os.getpid()}")
    tmp.write_bytes(flatbuffer)
    os.replace(tmp, out)
    return out
