"""The imagenet pools: keras.applications architectures with random weights (weights=None,
nothing downloaded). Their predictions are meaningless but their latencies are real; accuracies
are published top-1 figures *for the input size built*, marked "declared":

  imagenet-arch   the paper's Table 2 models at their native sizes (or one --input-size for all)
  imagenet-sizes  the same architecture at several input sizes: MobileNet V1 (128-224 px) and V2
                  (96-224 px) at the width multipliers of the TF-slim tables

Sources: the paper's Table 2; tensorflow/models research/slim/nets/mobilenet_v1.md (V1) and
research/slim/nets/mobilenet/README.md (V2): top-1 per width multiplier and input size.
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


# TF-slim's published top-1 (%) by (width multiplier, input size).
SLIM_MOBILENET_V1_TOP1: dict[tuple[float, int], float] = {
    (1.0, 224): 70.9, (1.0, 192): 70.0, (1.0, 160): 68.0, (1.0, 128): 65.2,
    (0.75, 224): 68.4, (0.75, 192): 67.2, (0.75, 160): 65.3, (0.75, 128): 62.1,
    (0.5, 224): 63.3, (0.5, 192): 61.7, (0.5, 160): 59.1, (0.5, 128): 56.3,
    (0.25, 224): 49.8, (0.25, 192): 47.7, (0.25, 160): 45.5, (0.25, 128): 41.5,
}
SLIM_MOBILENET_V2_TOP1: dict[tuple[float, int], float] = {
    (1.4, 224): 75.0, (1.3, 224): 74.4,
    (1.0, 224): 71.8, (1.0, 192): 70.7, (1.0, 160): 68.8, (1.0, 128): 65.3, (1.0, 96): 60.3,
    (0.75, 224): 69.8, (0.75, 192): 68.7, (0.75, 160): 66.4, (0.75, 128): 63.2, (0.75, 96): 58.8,
    (0.5, 224): 65.4, (0.5, 192): 63.9, (0.5, 160): 61.0, (0.5, 128): 57.7, (0.5, 96): 51.2,
    (0.35, 224): 60.3, (0.35, 192): 58.2, (0.35, 160): 55.7, (0.35, 128): 50.8, (0.35, 96): 45.5,
}
_SLIM = {"MobileNet": (SLIM_MOBILENET_V1_TOP1, "TF-slim mobilenet_v1.md"),
         "MobileNetV2": (SLIM_MOBILENET_V2_TOP1, "TF-slim mobilenet/README.md")}


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
        """At the native input size: the paper's Table 2, else the published table."""
        return self.accuracy_at(self.input_size)[0]

    def accuracy_at(self, size: int) -> tuple[float, str]:
        """(top-1 %, where it comes from) for this architecture built at `size` px: at the native
        size the paper's Table 2 where it lists the model; else the published figure for that size;
        else the published size nearest above (an optimistic bound, said so), else the native figure."""
        table, source = _SLIM.get(self.application, ({}, ""))
        if size == self.input_size and self.paper_name:
            return PAPER_TABLE2_TOP1[self.paper_name], f"paper Table 2 ({self.paper_name}), {size} px"
        if self.alpha is not None and (self.alpha, size) in table:
            return table[self.alpha, size], f"{source}, {size} px"
        published = sorted(s for (a, s) in table if a == self.alpha)
        above = [s for s in published if s >= size]
        if above:
            return table[self.alpha, above[0]], f"{source}, {above[0]} px (none published at {size} px: a bound)"
        native = self.paper_name and PAPER_TABLE2_TOP1[self.paper_name]
        if native:
            return native, (f"paper Table 2 ({self.paper_name}) at {self.input_size} px "
                            f"(none published at {size} px: a bound)")
        return table[self.alpha, published[-1]], f"{source}, {published[-1]} px (none published at {size} px)"

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


def _sized_specs() -> tuple[ArchSpec, ...]:
    specs = []
    for application, tag, table in (("MobileNet", "v1", SLIM_MOBILENET_V1_TOP1),
                                    ("MobileNetV2", "v2", SLIM_MOBILENET_V2_TOP1)):
        for alpha, size in sorted(table, key=lambda k: (k[0], k[1])):
            specs.append(ArchSpec(f"mobilenet-{tag}-{round(alpha * 100):03d}-{size:03d}", application, "", size, "tf",
                                  alpha=alpha))
    return tuple(specs)


# imagenet-sizes: one model per (architecture, width, input size) of the published tables.
SIZED_SPECS: tuple[ArchSpec, ...] = _sized_specs()
SIZED_NAMES = tuple(spec.name for spec in SIZED_SPECS)

PREPROCESSING_TEXT = {
    "tf": "RGB float32 [batch, H, W, 3], pixels 0..255 (scaled to [-1, 1] inside the model); random weights",
    "torch": "RGB float32 [batch, H, W, 3], pixels 0..255 (ImageNet mean/std normalised inside the model); "
             "random weights",
}


def spec_by_name(name: str) -> ArchSpec:
    for spec in (*ARCH_SPECS, *SIZED_SPECS):
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
