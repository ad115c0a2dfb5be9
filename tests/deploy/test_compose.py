"""The Compose file against the Compose Specification schema (vendored in check-jsonschema as
`vendor.compose-spec`, offline) and against what the stack must contain."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from deploy_support import COMPOSE_DIR, REPO, ROLES

COMPOSE_FILE = COMPOSE_DIR / "compose.yaml"


def schema_check(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def test_compose_file_matches_the_compose_specification() -> None:
    done = schema_check(COMPOSE_FILE)
    assert done.returncode == 0, done.stdout + done.stderr


def test_schema_check_rejects_a_broken_compose_file(tmp_path: Path) -> None:
    broken = tmp_path / "compose.yaml"
    text = COMPOSE_FILE.read_text()
    assert "      replicas: 3\n" in text
    broken.write_text(text.replace("      replicas: 3\n", "      replicas: 3\n      replica_count: 3\n", 1))
    done = schema_check(broken)
    assert done.returncode != 0 and "replica_count" in done.stdout + done.stderr


def test_services_and_their_wiring(compose) -> None:
    services = compose["services"]
    assert {"model-builder", "tfserving", "redis", "profiler", "executor", "selector", "envoy",
            "loadgen", "prometheus", "grafana"} <= set(services)
    assert services["selector"]["deploy"]["replicas"] == 3
    for role, port in ROLES.items():
        env = services[role]["environment"]
        assert env["MODIPICK_LISTEN"] == f"0.0.0.0:{port}"
        assert env["MODIPICK_REDIS_URL"] == "redis://redis:6379/0"
        assert env["MODIPICK_EXECUTOR_TARGET"] == "executor:50052"
        assert env["MODIPICK_PROFILER_TARGET"] == "profiler:50053"
    executor = services["executor"]["environment"]
    assert executor["MODIPICK_BACKEND"] == "tfserving"
    assert executor["MODIPICK_TFSERVING_TARGET"] == "tfserving:8500"
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, (name, dependency)


def test_official_tfserving_on_the_zoo_models_config(compose) -> None:
    services = compose["services"]
    tfs = services["tfserving"]
    assert re.fullmatch(r"\$\{TFSERVING_IMAGE:-tensorflow/serving:\d+\.\d+\.\d+\}", tfs["image"]), tfs["image"]
    assert "--model_config_file=/models/models.config" in tfs["command"]
    assert "models:/models:ro" in tfs["volumes"]
    assert tfs["depends_on"]["model-builder"]["condition"] == "service_completed_successfully"
    builder = services["model-builder"]
    assert builder["command"] == ["build", "--pool", "digits", "--out", "/models"]
    assert "models:/models" in builder["volumes"]
    assert services["executor"]["depends_on"]["tfserving"]["condition"] == "service_healthy"


def test_selectors_sit_behind_envoy_and_loadgen_targets_it(compose) -> None:
    services = compose["services"]
    envoy = services["envoy"]
    assert "./envoy.yaml:/etc/envoy/envoy.yaml:ro" in envoy["volumes"]
    assert "50051:50051" in envoy["ports"]
    assert "ports" not in services["selector"], "replicas cannot share a host port; Envoy publishes 50051"
    loadgen = services["loadgen"]
    assert loadgen["command"][loadgen["command"].index("--target") + 1] == "envoy:50051"
    assert services["prometheus"]["profiles"] == ["observability"]
    assert services["grafana"]["profiles"] == ["observability"]


def test_images_are_pinned_and_builds_and_mounts_exist(compose) -> None:
    for name, service in compose["services"].items():
        image = re.sub(r"\$\{[A-Z_]+:-(.+)\}", r"\1", service["image"])
        assert re.search(r":[\w.-]*\d[\w.-]*$", image) and not image.endswith(":latest"), (name, image)
        if "build" in service:
            context = (COMPOSE_DIR / service["build"]["context"]).resolve()
            assert context == REPO
            assert service["build"]["dockerfile"] == "deploy/docker/Dockerfile", name
            assert (context / service["build"]["dockerfile"]).is_file(), name
            # one Dockerfile, one ROLE per image: modipick/<role>
            assert image.split(":")[0] == f"modipick/{service['build']['args']['ROLE']}", (name, image)
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (COMPOSE_DIR / source).exists(), (name, source)
            elif not source.startswith("$"):
                assert source in compose["volumes"], (name, source)


def test_our_containers_are_hardened(compose) -> None:
    for name in ("model-builder", "executor", "profiler", "selector", "loadgen"):
        service = compose["services"][name]
        assert service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
