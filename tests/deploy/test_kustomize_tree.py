"""Every kustomization names files that exist, and every patch targets a resource that exists.
Runs without any renderer; the rendered checks are in test_k8s_manifests.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from deploy_support import COMPONENT_DIRS, K8S, KUSTOMIZE_DIRS
from deploy_kustomize_tree import matches, named_files, patch_targets, resources


def structural_problems(directory: Path) -> list[str]:
    problems = [f"{directory}: names missing {p}" for p in named_files(directory) if not p.exists()]
    for ref in named_files(directory):
        if ref.is_dir():
            problems += structural_problems(ref)
    if problems:
        return problems
    available = resources(directory)
    for description, selector in patch_targets(directory):
        if not any(matches(selector, r) for r in available):
            problems.append(f"{directory}: patch {description} targets nothing")
    return problems


@pytest.mark.parametrize("name", sorted(KUSTOMIZE_DIRS) + sorted(COMPONENT_DIRS))
def test_kustomization_files_exist_and_patches_hit(name: str) -> None:
    assert structural_problems({**KUSTOMIZE_DIRS, **COMPONENT_DIRS}[name]) == []


def test_every_kustomization_under_deploy_k8s_is_covered() -> None:
    found = {p.parent.resolve() for p in K8S.rglob("kustomization.yaml")}
    assert found == {p.resolve() for p in (*KUSTOMIZE_DIRS.values(), *COMPONENT_DIRS.values())}


def test_patch_for_a_missing_resource_is_reported(tmp_path: Path) -> None:
    k8s = tmp_path / "k8s"
    shutil.copytree(K8S, k8s)
    scale = k8s / "overlays" / "dev" / "scale-down.yaml"
    scale.write_text(scale.read_text().replace("name: executor\n", "name: exekutor\n", 1))
    problems = structural_problems(k8s / "overlays" / "dev")
    assert any("Deployment/exekutor" in p and "targets nothing" in p for p in problems), problems


def test_missing_resource_file_is_reported(tmp_path: Path) -> None:
    k8s = tmp_path / "k8s"
    shutil.copytree(K8S, k8s)
    (k8s / "base" / "profiler.yaml").unlink()
    problems = structural_problems(k8s / "overlays" / "prod")
    assert any("profiler.yaml" in p for p in problems), problems
