"""The pool manifest (<base>/manifest.json): what each SavedModel expects and how good it is.

Pure JSON, no TensorFlow: the Executor, the Profiler and clients read it without loading models.
Accuracies are percentages (0..100), as in modipick.core.ModelProfile.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MANIFEST_NAME = "manifest.json"
MODELS_CONFIG_NAME = "models.config"
SIGNATURE_NAME = "serving_default"
INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"


class ManifestError(ValueError):
    """The manifest is missing, unreadable or inconsistent; the message names the file and field."""


@dataclass(frozen=True, slots=True)
class ModelEntry:
    name: str
    version: int
    declared_accuracy: float  # percent
    input_shape: tuple[int, ...]  # -1 for the batch dimension
    labels: tuple[str, ...]
    preprocessing: str
    accuracy_source: str = "measured"  # "measured" on a held-out split | "declared" (paper, random weights)
    measured_accuracy: float | None = None
    input_name: str = INPUT_NAME
    input_dtype: str = "float32"
    output_name: str = OUTPUT_NAME
    signature_name: str = SIGNATURE_NAME
    # Encoded images (PNG/JPEG, 0..255) are scaled by image_value_max/255 before the model sees them.
    image_value_max: float = 255.0
    params: int = 0
    build_key: str = ""
    input_size: int = 0   # px of the square input the model takes (0: not square)
    accuracy_basis: str = ""  # where a declared accuracy comes from (table, input size)
    tflite: str = ""      # the on-device export, relative to the base path ("" when not built)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["input_shape"] = list(self.input_shape)
        data["labels"] = list(self.labels)
        if self.measured_accuracy is None:
            del data["measured_accuracy"]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], *, where: str = MANIFEST_NAME) -> "ModelEntry":
        try:
            known = {f for f in cls.__dataclass_fields__}
            kwargs = {k: v for k, v in data.items() if k in known}
            kwargs["input_shape"] = tuple(int(d) for d in data["input_shape"])
            kwargs["labels"] = tuple(str(label) for label in data.get("labels", ()))
            kwargs["version"] = int(data["version"])
            kwargs["declared_accuracy"] = float(data["declared_accuracy"])
            return cls(**kwargs)
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"{where}: model entry {data.get('name', '?')!r} is invalid: {exc!r}") from exc


@dataclass(frozen=True, slots=True)
class Manifest:
    pool: str
    models: tuple[ModelEntry, ...]
    extra: dict[str, Any] = field(default_factory=dict)  # dataset split, build settings

    def find(self, name: str) -> ModelEntry | None:
        """The newest entry of `name` (manifests normally carry one version per model)."""
        matches = [m for m in self.models if m.name == name]
        return max(matches, key=lambda m: m.version) if matches else None

    def to_json(self) -> dict[str, Any]:
        return {"pool": self.pool, **self.extra, "models": [m.to_json() for m in self.models]}


def read_manifest(base: str | os.PathLike[str]) -> Manifest:
    path = Path(base) / MANIFEST_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ManifestError(f"{path}: no manifest (build the pool with `modipick zoo build`)") from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{path}: unreadable manifest: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("models"), list):
        raise ManifestError(f"{path}: expected an object with a 'models' list")
    models = tuple(ModelEntry.from_json(m, where=str(path)) for m in data["models"])
    extra = {k: v for k, v in data.items() if k not in ("pool", "models")}
    return Manifest(pool=str(data.get("pool", "")), models=models, extra=extra)


def try_read_manifest(base: str | os.PathLike[str]) -> Manifest | None:
    try:
        return read_manifest(base)
    except ManifestError:
        return None


def write_manifest(base: str | os.PathLike[str], manifest: Manifest) -> Path:
    """Atomic: readers never see half a manifest."""
    path = Path(base) / MANIFEST_NAME
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest.to_json(), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path
