"""TensorFlow Serving base-path layout: <base>/<model>/<version>/saved_model.pb, plus
<base>/models.config (ModelServerConfig text format, what `tensorflow_model_server
--model_config_file=` loads).

No TensorFlow here; the models.config helpers import tensorflow_serving's protos lazily.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from modipick.zoo.manifest import MODELS_CONFIG_NAME

SAVED_MODEL_FILE = "saved_model.pb"


@dataclass(frozen=True, slots=True)
class ServedModel:
    """One `config { ... }` of models.config: a model name, where its versions live, which are served."""

    name: str
    base_path: str
    versions: tuple[int, ...] = ()  # specific versions; empty = the latest one (TF Serving's default)
    version_labels: Mapping[str, int] = field(default_factory=dict)


def version_dirs(model_dir: str | os.PathLike[str]) -> list[int]:
    """Versions present under a model directory (numeric sub-folders holding a SavedModel), ascending."""
    path = Path(model_dir)
    if not path.is_dir():
        return []
    return sorted(int(p.name) for p in path.iterdir()
                  if p.name.isdigit() and (p / SAVED_MODEL_FILE).is_file())


def discover(base: str | os.PathLike[str]) -> dict[str, list[int]]:
    """Every model under a base path with its versions (models without any version are left out)."""
    root = Path(base)
    if not root.is_dir():
        return {}
    found = {p.name: version_dirs(p) for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")}
    return {name: versions for name, versions in found.items() if versions}


def models_config_text(models: Iterable[ServedModel]) -> str:
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2 as msc

    config = msc.ModelServerConfig()
    for model in models:
        entry = config.model_config_list.config.add()
        entry.name = model.name
        entry.base_path = model.base_path
        entry.model_platform = "tensorflow"
        if model.versions:
            entry.model_version_policy.specific.versions.extend(model.versions)
        else:
            entry.model_version_policy.latest.num_versions = 1
        for label, version in model.version_labels.items():
            entry.version_labels[label] = version
    return text_format.MessageToString(config)


def write_models_config(base: str | os.PathLike[str], models: Iterable[ServedModel]) -> Path:
    path = Path(base) / MODELS_CONFIG_NAME
    tmp = path.with_suffix(".config.tmp")
    tmp.write_text(models_config_text(models), encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_models_config(path: str | os.PathLike[str]) -> list[ServedModel]:
    """Parse a models.config; raises ValueError naming the file on bad text."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2 as msc

    config = msc.ModelServerConfig()
    try:
        text_format.Parse(Path(path).read_text(encoding="utf-8"), config)
    except (OSError, text_format.ParseError) as exc:
        raise ValueError(f"{path}: not a ModelServerConfig: {exc}") from exc
    served = []
    for entry in config.model_config_list.config:
        policy = entry.model_version_policy
        versions = tuple(policy.specific.versions) if policy.WhichOneof("policy_choice") == "specific" else ()
        served.append(ServedModel(entry.name, entry.base_path, versions, dict(entry.version_labels)))
    return served


def served_models(base: str | os.PathLike[str]) -> list[ServedModel]:
    """What a server should serve from `base`: its models.config if there is one (base paths relative
    to `base` are resolved against it; absolute ones that do not exist — e.g. a container's /models/x —
    fall back to <base>/<name>), else every model folder found."""
    root = Path(base)
    config = root / MODELS_CONFIG_NAME
    if not config.is_file():
        return [ServedModel(name, str(root / name)) for name in discover(root)]
    resolved = []
    for model in read_models_config(config):
        path = Path(model.base_path)
        if not path.is_absolute():
            path = root / path
        if not path.is_dir():
            path = root / model.name
        resolved.append(ServedModel(model.name, str(path), model.versions, model.version_labels))
    return resolved


def versions_to_serve(model: ServedModel) -> list[int]:
    """TF Serving's version policy: the listed versions that exist, or only the latest one."""
    present = version_dirs(model.base_path)
    if model.versions:
        return [v for v in present if v in model.versions]
    return present[-1:]
