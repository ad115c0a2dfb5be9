"""The imagenet-arch pool: keras.applications architectures with random weights (weights=None,
nothing downloaded). Their predictions are meaningless but their latencies are real; accuracies
are the paper's Table 2 top-1 figures, marked "declared".
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Callable

NUM_CLASSES = 1000
LABELS = tuple(str(i) for i in range(NUM_CLASSES))  # ImageNet class ids (names would need a download)
BUILDER_VERSION = 1
WEIGHTS_SEED = 0

# The paper's Table 2 (top-1 %; modipick.sim packages it as table2.csv), by the name used there.
PAPER_TABLE2_TOP1: dict[str, float] = {
    "SqueezeNet": 49.0,
    "MobileNetV1 0.25": 49.7,
    "MobileNetV1 0.5": 63.2,
    "DenseNet": 64.2,
    "MobileNetV1 0.75": 68.3,
    "MobileNetV1 1.0": 71.0,
    "NasNet Mobile": 73.9,
    "InceptionResNetV2": 77.5,
    "InceptionV3": 77.9,
    "InceptionV4": 80.1,
    "NasNet Large": 82.6,
}


@dataclass(frozen=True, slots=True)
class ArchSpec:
    name: str           # model name in the pool (and in TF Serving)
    application: str    # keras.applications constructor
    paper_name: str     # row of the paper's Table 2
    input_size: int     # native square input
    preprocessing: str  # "tf": x/127.5 - 1 ; "torch": ImageNet mean/std on x/255
    alpha: float | None = None

    @property
    def declared_accuracy(self) -> float:
        return PAPER_TABLE2_TOP1[self.paper_name]

    def key(self, input_size: int) -> str:
        blob = json.dumps({"name": self.name, "app": self.application, "alpha": self.alpha, "size": input_size,
                           "pre": self.preprocessing, "seed": WEIGHTS_SEED, "builder": BUILDER_VERSION},
                          sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


ARCH_SPECS: tuple[ArchSpec, ...] = (
    ArchSpec("mobilenet-025", "MobileNet", "MobileNetV1 0.25", 224, "tf", alpha=0.25),
    ArchSpec("mobilenet-050", "MobileNet", "MobileNetV1 0.5", 224, "tf", alpha=0.5),
    ArchSpec("mobilenet-075", "MobileNet", "MobileNetV1 0.75", 224, "tf", alpha=0.75),
    ArchSpec("mobilenet-100", "MobileNet", "MobileNetV1 1.0", 224, "tf", alpha=1.0),
    ArchSpec("nasnet-mobile", "NASNetMobile", "NasNet Mobile", 224, "tf"),
    ArchSpec("densenet121", "DenseNet121", "DenseNet", 224, "torch"),
    ArchSpec("inception-v3", "InceptionV3", "InceptionV3", 299, "tf"),
    ArchSpec("inception-resnet-v2", "InceptionResNetV2", "InceptionResNetV2", 299, "tf"),
    ArchSpec("nasnet-large", "NASNetLarge", "NasNet Large", 331, "tf"),
)
ARCH_NAMES = tuple(spec.name for spec in ARCH_SPECS)

PREPROCESSING_TEXT = {
    "tf": "RGB float32 [batch, H, W, 3], pixels 0..255 (scaled to [-1, 1] inside the model); random weights",
    "torch": "RGB float32 [batch, H, W, 3], pixels 0..255 (ImageNet mean/std normalised inside the model); "
             "random weights",
}


def spec_by_name(name: str) -> ArchSpec:
    for spec in ARCH_SPECS:
        if spec.name == name:
            return spec
    raise KeyError(name)


def build_keras_model(spec: ArchSpec, input_size: int) -> Any:
    import keras

    keras.utils.set_random_seed(WEIGHTS_SEED)
    constructor = getattr(keras.applications, spec.application)
    kwargs: dict[str, Any] = {"weights": None, "input_shape": (input_size, input_size, 3), "classes": NUM_CLASSES}
    if spec.alpha is not None:
        kwargs["alpha"] = spec.alpha
    return constructor(**kwargs)


def preprocess_fn(spec: ArchSpec) -> Callable[[Any], Any]:
    import tensorflow as tf

    if spec.preprocessing == "torch":
        mean = tf.constant([0.485, 0.456, 0.406], tf.float32)
        std = tf.constant([0.229, 0.224, 0.225], tf.float32)
        return lambda x: (x / 255.0 - mean) / std
    return lambda x: x / 127.5 - 1.0
