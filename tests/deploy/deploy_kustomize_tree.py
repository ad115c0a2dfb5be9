"""Offline reading of the Kustomize tree under deploy/k8s: which files a kustomization names,
which resources it yields (with generated ConfigMaps/Secrets), and whether every patch targets one.

Rendering itself is done by a real Kustomize (`kubectl kustomize` or `kustomize build`) where one is
installed; this module is the structural check that always runs, renderer or not.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")


@dataclass(frozen=True)
class ResourceId:
    kind: str
    name: str


def kustomization_file(directory: Path) -> Path:
    for name in KUSTOMIZATION_NAMES:
        if (directory / name).is_file():
            return directory / name
    raise FileNotFoundError(f"{directory}: no kustomization.yaml")


def load_kustomization(directory: Path) -> dict:
    return yaml.safe_load(kustomization_file(directory).read_text()) or {}


def load_docs(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _generator_files(entry: dict) -> list[str]:
    files = []
    for item in entry.get("files", []) + entry.get("envs", []):
        files.append(item.split("=", 1)[1] if "=" in item else item)
    return files


def named_files(directory: Path) -> list[Path]:
    """Every local path the kustomization in `directory` names (resources, patches, generator
    inputs, components), resolved; remote references are not allowed here."""
    k = load_kustomization(directory)
    names: list[str] = []
    names += k.get("resources", []) + k.get("components", [])
    names += k.get("patchesStrategicMerge", [])
    names += [p["path"] for p in k.get("patches", []) + k.get("patchesJson6902", []) if "path" in p]
    for gen in k.get("configMapGenerator", []) + k.get("secretGenerator", []):
        names += _generator_files(gen)
    return [(directory / n).resolve() for n in names]


def resources(directory: Path) -> set[ResourceId]:
    """Kinds and names a kustomization yields before name suffixes (generators included)."""
    k = load_kustomization(directory)
    found: set[ResourceId] = set()
    for ref in k.get("resources", []) + k.get("components", []):
        path = (directory / ref).resolve()
        if path.is_dir():
            found |= resources(path)
        else:
            found |= {ResourceId(d["kind"], d["metadata"]["name"]) for d in load_docs(path)}
    for gen in k.get("configMapGenerator", []):
        found.add(ResourceId("ConfigMap", gen["name"]))
    for gen in k.get("secretGenerator", []):
        found.add(ResourceId("Secret", gen["name"]))
    return found


def patch_targets(directory: Path) -> list[tuple[str, dict]]:
    """(description, selector) for every patch: selector has `kind` and `name` (name may be a regex,
    as in Kustomize's `target`)."""
    k = load_kustomization(directory)
    out: list[tuple[str, dict]] = []
    for patch in k.get("patches", []) + k.get("patchesJson6902", []):
        if "target" in patch:
            out.append((f"target {patch['target']}", patch["target"]))
            continue
        docs = load_docs(directory / patch["path"]) if "path" in patch else [
            d for d in yaml.safe_load_all(patch["patch"]) if d]
        for doc in docs:
            out.append((f"{patch.get('path', 'inline patch')}: {doc['kind']}/{doc['metadata']['name']}",
                        {"kind": doc["kind"], "name": doc["metadata"]["name"]}))
    for path in k.get("patchesStrategicMerge", []):
        for doc in load_docs(directory / path):
            out.append((f"{path}: {doc['kind']}/{doc['metadata']['name']}",
                        {"kind": doc["kind"], "name": doc["metadata"]["name"]}))
    return out


def matches(selector: dict, resource: ResourceId) -> bool:
    if "kind" in selector and not re.fullmatch(selector["kind"], resource.kind):
        return False
    if "name" in selector and not re.fullmatch(selector["name"], resource.name):
        return False
    return True


def kustomize_command() -> list[str] | None:
    """A real Kustomize renderer, if this machine has one (Debian/Google-SDK kubectl has
    `kubectl kustomize`; the standalone `kustomize` binary works too)."""
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        probe = subprocess.run(["kubectl", "kustomize", "--help"], capture_output=True, text=True)
        if probe.returncode == 0:
            return ["kubectl", "kustomize"]
    return None


def render(directory: Path, command: list[str]) -> list[dict]:
    done = subprocess.run([*command, str(directory)], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} {directory} failed:\n{done.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def raw_resources(directory: Path) -> list[dict]:
    """Fallback without a renderer: every resource document the tree's files contain (patches and
    generators excluded), each validated on its own."""
    docs: list[dict] = []
    k = load_kustomization(directory)
    for ref in k.get("resources", []) + k.get("components", []):
        path = (directory / ref).resolve()
        docs += raw_resources(path) if path.is_dir() else load_docs(path)
    return docs
