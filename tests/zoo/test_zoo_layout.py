"""TF Serving layout, models.config and manifest helpers (no TensorFlow needed)."""

from __future__ import annotations

import pytest

from modipick.zoo.layout import (ServedModel, discover, read_models_config, served_models, version_dirs,
                                 versions_to_serve, write_models_config)
from modipick.zoo.manifest import Manifest, ManifestError, ModelEntry, read_manifest, write_manifest


def fake_version(base, name, version):
    path = base / name / str(version)
    path.mkdir(parents=True)
    (path / "saved_model.pb").write_bytes(b"")


def test_versions_are_numeric_folders_with_a_saved_model(tmp_path):
    for v in (1, 2, 10):
        fake_version(tmp_path, "m", v)
    (tmp_path / "m" / "3").mkdir()              # no saved_model.pb: not a version
    (tmp_path / "m" / ".tmp-4-123").mkdir()     # an export in progress
    (tmp_path / "empty").mkdir()
    assert version_dirs(tmp_path / "m") == [1, 2, 10]
    assert discover(tmp_path) == {"m": [1, 2, 10]}
    assert versions_to_serve(ServedModel("m", str(tmp_path / "m"))) == [10]
    assert versions_to_serve(ServedModel("m", str(tmp_path / "m"), versions=(1, 2, 7))) == [1, 2]


def test_models_config_round_trip_and_container_paths(tmp_path):
    fake_version(tmp_path, "a", 1)
    fake_version(tmp_path, "b", 1)
    fake_version(tmp_path, "b", 2)
    labelled = ServedModel("b", str(tmp_path / "b"), versions=(1, 2), version_labels={"stable": 1})
    write_models_config(tmp_path, [ServedModel("a", "/models/a"), labelled])
    parsed = read_models_config(tmp_path / "models.config")
    assert parsed[0] == ServedModel("a", "/models/a")
    assert parsed[1] == ServedModel("b", str(tmp_path / "b"), (1, 2), {"stable": 1})
    # /models/a does not exist on this machine: served from <base>/a, as the container would see it
    served = {m.name: m for m in served_models(tmp_path)}
    assert served["a"].base_path == str(tmp_path / "a")
    assert versions_to_serve(served["b"]) == [1, 2]


def test_bad_models_config_names_the_file(tmp_path):
    (tmp_path / "models.config").write_text("model_config_list { config { nme: 'x' } }")
    with pytest.raises(ValueError, match="models.config"):
        read_models_config(tmp_path / "models.config")


def test_manifest_round_trip_and_errors(tmp_path):
    entry = ModelEntry(name="m", version=2, declared_accuracy=91.5, input_shape=(-1, 8, 8, 1), labels=("0", "1"),
                       preprocessing="raw", measured_accuracy=91.5, image_value_max=16.0, params=10)
    write_manifest(tmp_path, Manifest(pool="digits", models=(entry,), extra={"dataset": {"seed": 0}}))
    loaded = read_manifest(tmp_path)
    assert loaded.models == (entry,)
    assert loaded.extra == {"dataset": {"seed": 0}}
    assert loaded.find("m") == entry and loaded.find("x") is None
    with pytest.raises(ManifestError, match="no manifest"):
        read_manifest(tmp_path / "nowhere")
    (tmp_path / "manifest.json").write_text('{"models": [{"name": "m"}]}')
    with pytest.raises(ManifestError, match="model entry 'm' is invalid"):
        read_manifest(tmp_path)
