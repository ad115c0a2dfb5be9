"""The digits pool: real CNNs/MLPs of different sizes trained on scikit-learn's bundled digits.

Every model is trained with a fixed seed on the same stratified split and its accuracy measured on
the held-out part through the exported serving signature, so the pool has a real accuracy and
latency spread. `held_out_digits()` gives clients the same held-out images (no TensorFlow needed).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

INPUT_SHAPE = (8, 8, 1)
LABELS = tuple(str(d) for d in range(10))
PIXEL_MAX = 16.0
SPLIT_SEED = 0
TEST_FRACTION = 0.25
PREPROCESSING = ("raw sklearn digits: float32 [batch, 8, 8, 1], pixels 0..16 (divided by 16 inside the model); "
                 "encoded PNG/JPEG grayscale 0..255 is scaled by 16/255")
BUILDER_VERSION = 1


@dataclass(frozen=True, slots=True)
class DigitsSpec:
    """An architecture recipe. `kind`: "mlp" (`hidden` = dense widths) or "cnn" (`blocks` of 3x3
    conv widths, each block max-pooled when `pool`; `upsample` resizes the 8x8 input first, which is
    what makes the big one slow)."""

    name: str
    kind: str
    hidden: tuple[int, ...] = ()
    blocks: tuple[tuple[int, ...], ...] = ()
    pool: bool = True
    dense: int = 0
    upsample: int = 0
    epochs: int = 20
    learning_rate: float = 1e-2
    batch_size: int = 32
    activation: str = "relu"

    def key(self, seed: int) -> str:
        blob = json.dumps({"spec": asdict(self), "seed": seed, "split": [SPLIT_SEED, TEST_FRACTION],
                           "builder": BUILDER_VERSION}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


# Smallest to largest. Measured on a busy 2-core box: mlp-tiny ~84 %, mlp-small ~96 %, cnn-small ~96 %,
# cnn-medium ~98 %, cnn-large ~98 % at ~0.5 -> ~3 ms per image; the build takes ~1 min.
DIGITS_SPECS: tuple[DigitsSpec, ...] = (
    DigitsSpec("mlp-tiny", "mlp", hidden=(4,), epochs=10, activation="tanh"),
    DigitsSpec("mlp-small", "mlp", hidden=(12,), epochs=15, learning_rate=3e-3),
    DigitsSpec("cnn-small", "cnn", blocks=((8,),), pool=False, epochs=20, learning_rate=3e-3),
    DigitsSpec("cnn-medium", "cnn", blocks=((32, 32),), dense=64, epochs=15, learning_rate=3e-3),
    DigitsSpec("cnn-large", "cnn", blocks=((48, 48), (96, 96)), dense=128, upsample=16, epochs=8,
               learning_rate=3e-3, batch_size=64),
)


def load_split(seed: int = SPLIT_SEED, test_fraction: float = TEST_FRACTION
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test); images float32 [n, 8, 8, 1] with pixels 0..16."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = digits.images.astype(np.float32)[..., None]
    x_train, x_test, y_train, y_test = train_test_split(
        images, digits.target.astype(np.int64), test_size=test_fraction, random_state=seed, stratify=digits.target)
    return x_train, y_train, x_test, y_test


def held_out_digits(seed: int = SPLIT_SEED, test_fraction: float = TEST_FRACTION) -> tuple[np.ndarray, np.ndarray]:
    """The labelled test images no digits model was trained on."""
    _, _, x_test, y_test = load_split(seed, test_fraction)
    return x_test, y_test


def build_keras_model(spec: DigitsSpec) -> Any:
    import keras

    layers = keras.layers
    inputs = keras.Input(INPUT_SHAPE, name="image")
    x = layers.Rescaling(1.0 / PIXEL_MAX)(inputs)
    if spec.kind == "mlp":
        x = layers.Flatten()(x)
        for width in spec.hidden:
            x = layers.Dense(width, activation=spec.activation)(x)
    elif spec.kind == "cnn":
        if spec.upsample:
            x = layers.Resizing(spec.upsample, spec.upsample, interpolation="bilinear")(x)
        for block in spec.blocks:
            for width in block:
                x = layers.Conv2D(width, 3, padding="same", activation=spec.activation)(x)
            if spec.pool:
                x = layers.MaxPooling2D()(x)
        x = layers.Flatten()(x)
        if spec.dense:
            x = layers.Dense(spec.dense, activation=spec.activation)(x)
    else:
        raise ValueError(f"unknown model kind {spec.kind!r} for {spec.name}")
    outputs = layers.Dense(len(LABELS), activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=spec.name.replace("-", "_"))


def train(spec: DigitsSpec, seed: int, split: tuple[np.ndarray, ...]) -> Any:
    import keras

    x_train, y_train, _, _ = split
    keras.utils.set_random_seed(seed)
    model = build_keras_model(spec)
    model.compile(optimizer=keras.optimizers.Adam(spec.learning_rate), loss="sparse_categorical_crossentropy")
    model.fit(x_train, y_train, epochs=spec.epochs, batch_size=spec.batch_size, verbose=0, shuffle=True)
    return model


def saved_model_accuracy(version_dir: str, x_test: np.ndarray, y_test: np.ndarray) -> float:
    """Accuracy (percent) of the exported SavedModel's serving signature: what serving will see."""
    import tensorflow as tf

    from modipick.zoo.manifest import INPUT_NAME, OUTPUT_NAME, SIGNATURE_NAME

    serve = tf.saved_model.load(version_dir).signatures[SIGNATURE_NAME]
    probabilities = serve(**{INPUT_NAME: tf.constant(x_test)})[OUTPUT_NAME].numpy()
    return round(100.0 * float((probabilities.argmax(axis=1) == y_test).mean()), 2)
