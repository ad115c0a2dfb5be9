"""Build a pool into a TF Serving base path: SavedModels, models.config and manifest.json.

Cached per model: a model whose manifest entry carries the same build key (recipe + seed +
builder version) and whose SavedModel is on disk is reused, so a second build is instant.
A file lock keeps concurrent builds of the same base path (two test runs, `modipick up`) apart.
"""

from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator, Sequence, TextIO

from modipick.zoo import digits, imagenet
from modipick.zoo.layout import SAVED_MODEL_FILE, ServedModel, write_models_config
from modipick.zoo.manifest import MODELS_CONFIG_NAME, Manifest, ModelEntry, try_read_manifest, write_manifest
from modipick.zoo.progress import Progress

POOLS = ("digits", "imagenet-arch", "imagenet-sizes")
VERSION = 1


class BuildError(ValueError):
    """Bad build request (unknown pool or model, bad size); the message says which value."""


@dataclass(frozen=True, slots=True)
class BuildRequest:
    pool: str
    out: Path
    models: tuple[str, ...] = ()       # subset; empty = the whole pool
    seed: int = 0
    input_size: int | None = None      # imagenet-arch only: override every model's input size
    force: bool = False
    config_base_path: str | None = None  # models.config base_path prefix (e.g. /models in a container)
    tflite: bool = False               # also export every model as a quantized .tflite (on-device runner)


def default_out(pool: str, environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    root = env.get("MODIPICK_ZOO_CACHE") or str(Path.home() / ".cache" / "modipick" / "zoo")
    return Path(root) / pool


@contextmanager
def _locked(base: Path) -> Iterator[None]:
    base.mkdir(parents=True, exist_ok=True)
    with open(base / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def expected_keys(request: BuildRequest) -> dict[str, str]:
    """Model name -> build key of what `request` would build (no TensorFlow)."""
    if request.pool == "digits":
        specs = [s for s in digits.DIGITS_SPECS if not request.models or s.name in request.models]
        return {s.name: s.key(request.seed) for s in specs}
    archs = [s for s in _imagenet_specs(request.pool) if not request.models or s.name in request.models]
    return {s.name: s.key(request.input_size or s.input_size) for s in archs}


def _imagenet_specs(pool: str) -> tuple[imagenet.ArchSpec, ...]:
    return imagenet.SIZED_SPECS if pool == "imagenet-sizes" else imagenet.ARCH_SPECS


def is_current(request: BuildRequest) -> bool:
    """True when the base path already holds exactly what `request` would build (a cache hit)."""
    base = request.out.expanduser()
    old = try_read_manifest(base)
    if old is None or old.pool != request.pool or not (base / MODELS_CONFIG_NAME).is_file():
        return False
    wanted = expected_keys(request)
    return (sorted(m.name for m in old.models) == sorted(wanted)
            and all(_reusable(base, old, name, key) is not None for name, key in wanted.items())
            and (not request.tflite or all(m.tflite and (base / m.tflite).is_file() for m in old.models))
            and _declares_what_it_would(request, old))


def _declares_what_it_would(request: BuildRequest, old: Manifest) -> bool:
    """The cached manifest declares the accuracies a build would declare now (the tables change
    without the weights changing: a build then only rewrites the manifest)."""
    if request.pool == "digits":
        return True
    for spec in _imagenet_specs(request.pool):
        entry = old.find(spec.name)
        if entry is not None and (entry.declared_accuracy, entry.accuracy_basis) != spec.accuracy_at(
                request.input_size or spec.input_size):
            return False
    return True


def _reusable(base: Path, old: Manifest | None, name: str, key: str) -> ModelEntry | None:
    if old is None or (entry := old.find(name)) is None or entry.build_key != key:
        return None
    return entry if (base / name / str(entry.version) / SAVED_MODEL_FILE).is_file() else None


def build_pool(request: BuildRequest, *, stream: TextIO | None = None) -> Manifest:
    if request.pool not in POOLS:
        raise BuildError(f"unknown pool {request.pool!r}; choose one of {', '.join(POOLS)}")
    names = ([s.name for s in digits.DIGITS_SPECS] if request.pool == "digits"
             else [s.name for s in _imagenet_specs(request.pool)])
    _select(names, request.models, request.pool)  # fail on a bad name before touching the disk
    base = request.out.expanduser().resolve()
    with _locked(base):
        old = try_read_manifest(base)
        if request.pool == "digits":
            entries, extra = _build_digits(base, request, old, stream)
        else:
            entries, extra = _build_imagenet(base, request, old, stream)
        if request.tflite:
            entries = [_with_tflite(base, e, request.force, stream) for e in entries]
        prefix = (request.config_base_path or "").rstrip("/")
        write_models_config(base, [ServedModel(e.name, f"{prefix}/{e.name}" if prefix else str(base / e.name))
                                   for e in entries])
        manifest = Manifest(pool=request.pool, models=tuple(entries), extra=extra)
        write_manifest(base, manifest)
    return manifest


def _select(names: Sequence[str], wanted: Sequence[str], pool: str) -> list[str]:
    unknown = [n for n in wanted if n not in names]
    if unknown:
        raise BuildError(f"unknown model {unknown[0]!r} in pool {pool}; known: {', '.join(names)}")
    return [n for n in names if not wanted or n in wanted]


def _build_digits(base: Path, request: BuildRequest, old: Manifest | None,
                  stream: TextIO | None) -> tuple[list[ModelEntry], dict]:
    if request.input_size is not None:
        raise BuildError("--input-size applies to imagenet-arch only (digits are 8x8)")
    specs = {s.name: s for s in digits.DIGITS_SPECS}
    chosen = [specs[n] for n in _select(list(specs), request.models, "digits")]
    progress = Progress(len(chosen), stream=stream)
    split = None
    entries = []
    for spec in chosen:
        key = spec.key(request.seed)
        reused = None if request.force else _reusable(base, old, spec.name, key)
        if reused is not None:
            entries.append(replace(reused, input_size=digits.INPUT_SHAPE[0]))
            progress.finish(f"{spec.name}: cached ({reused.declared_accuracy:.1f} %)")
            continue
        progress.step(f"{spec.name}: training {spec.epochs} epochs")
        started = time.monotonic()
        if split is None:
            split = digits.load_split()
        model = digits.train(spec, request.seed, split)
        from modipick.zoo.export import export_saved_model

        version_dir = export_saved_model(model, base / spec.name / str(VERSION), digits.INPUT_SHAPE)
        accuracy = digits.saved_model_accuracy(str(version_dir), split[2], split[3])
        entries.append(ModelEntry(
            name=spec.name, version=VERSION, declared_accuracy=accuracy, measured_accuracy=accuracy,
            accuracy_source="measured", input_shape=(-1, *digits.INPUT_SHAPE), labels=digits.LABELS,
            preprocessing=digits.PREPROCESSING, image_value_max=digits.PIXEL_MAX,
            params=int(model.count_params()), build_key=key, input_size=digits.INPUT_SHAPE[0]))
        progress.finish(f"{spec.name}: {accuracy:.1f} % on {len(split[3])} held-out digits "
                        f"({time.monotonic() - started:.1f} s)")
    progress.close(f"digits pool ready at {base}")
    extra = {"dataset": {"name": "sklearn.datasets.load_digits", "split_seed": digits.SPLIT_SEED,
                         "test_fraction": digits.TEST_FRACTION, "train_seed": request.seed}}
    return entries, extra


def _build_imagenet(base: Path, request: BuildRequest, old: Manifest | None,
                    stream: TextIO | None) -> tuple[list[ModelEntry], dict]:
    if request.input_size is not None and request.input_size < 32:
        raise BuildError(f"--input-size {request.input_size}: keras.applications need at least 32")
    if request.input_size is not None and request.pool == "imagenet-sizes":
        raise BuildError("--input-size: every model of imagenet-sizes has its own input size")
    specs = _imagenet_specs(request.pool)
    chosen = [imagenet.spec_by_name(n) for n in _select([s.name for s in specs], request.models, request.pool)]
    progress = Progress(len(chosen), stream=stream)
    entries = []
    for spec in chosen:
        size = request.input_size or spec.input_size
        key = spec.key(size)
        accuracy, basis = spec.accuracy_at(size)
        reused = None if request.force else _reusable(base, old, spec.name, key)
        if reused is not None:  # the declared accuracy follows the published tables, not the cache
            entries.append(replace(reused, declared_accuracy=accuracy, accuracy_basis=basis, input_size=size))
            progress.finish(f"{spec.name}: cached")
            continue
        progress.step(f"{spec.name}: building {spec.application} at {size}x{size} (random weights)")
        started = time.monotonic()
        model = imagenet.build_keras_model(spec, size)
        from modipick.zoo.export import export_saved_model

        export_saved_model(model, base / spec.name / str(VERSION), (size, size, 3),
                           preprocess=imagenet.preprocess_fn(spec))
        entries.append(ModelEntry(
            name=spec.name, version=VERSION, declared_accuracy=accuracy, accuracy_source="declared",
            input_shape=(-1, size, size, 3), labels=imagenet.LABELS,
            preprocessing=imagenet.PREPROCESSING_TEXT[spec.preprocessing], image_value_max=255.0,
            params=int(model.count_params()), build_key=key, input_size=size, accuracy_basis=basis))
        progress.finish(f"{spec.name}: {model.count_params() / 1e6:.1f} M parameters, declared "
                        f"{accuracy:.1f} % ({basis}) ({time.monotonic() - started:.1f} s)")
    progress.close(f"{request.pool} pool ready at {base}")
    return entries, {"weights": "random (keras.applications weights=None)",
                     "declared_accuracy_source": "top-1 % for the input size built: the ModiPick paper's Table 2 "
                                                 "at native sizes, TF-slim's MobileNet tables per input size"}


def _with_tflite(base: Path, entry: ModelEntry, force: bool, stream: TextIO | None) -> ModelEntry:
    from modipick.zoo.tflite import export_tflite, tflite_path

    out = tflite_path(base, entry.name)
    if force or not (entry.tflite and out.is_file()):
        if stream is not None:
            print(f"{entry.name}: exporting {out.name} (dynamic-range quantized)", file=stream)
        export_tflite(base / entry.name / str(entry.version), out)
    return replace(entry, tflite=str(out.relative_to(base)))
