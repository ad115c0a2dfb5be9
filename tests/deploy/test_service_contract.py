"""The arguments and MODIPICK_* settings that the deployment files hand to modipick are the ones
its commands really accept: parsed here by the commands' own parsers (no service is started)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml

from deploy_support import COMPOSE_DIR, K8S, KUSTOMIZE_DIRS, ROLES, by_kind, rendered, role_environment
from modipick.runtime import config as runtime_config

PARSED_ROLES = ("selector", "profiler")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((COMPOSE_DIR / "compose.yaml").read_text())


def parse_role(role: str, environ: dict[str, str], monkeypatch) -> tuple[object, set[str]]:
    """Run the role's own settings parser on `environ`; return its args and the env names it knows."""
    known: set[str] = set()
    original = runtime_config.EnvArgumentParser.add_option

    def spy(self, flag, **kwargs):
        known.add(runtime_config.env_name(flag))
        return original(self, flag, **kwargs)

    monkeypatch.setattr(runtime_config.EnvArgumentParser, "add_option", spy)
    module = importlib.import_module(f"modipick.{role}.__main__")
    _, args = module.parse_settings([], environ=environ)
    return args, known


def k8s_environment(role: str, files: Path) -> dict[str, str]:
    return role_environment(rendered(KUSTOMIZE_DIRS["prod"]), role, files)


@pytest.mark.parametrize("role", PARSED_ROLES)
def test_compose_settings_parse(role: str, compose, monkeypatch) -> None:
    environ = {k: str(v) for k, v in compose["services"][role]["environment"].items()}
    args, known = parse_role(role, environ, monkeypatch)
    assert args.listen == f"0.0.0.0:{ROLES[role]}"
    assert args.redis_url == "redis://redis:6379/0"
    assert args.executor_target == "executor:50052"
    assert args.log_json is True
    assert (args.metrics_port, args.tracing) == (9090, "off")
    unknown = set(environ) - known - {"MODIPICK_PROFILER_TARGET", "MODIPICK_POLICY"}
    assert unknown == set()


@pytest.mark.parametrize("role", PARSED_ROLES)
def test_kubernetes_settings_parse(role: str, monkeypatch, tmp_path: Path) -> None:
    environ = k8s_environment(role, tmp_path)
    args, known = parse_role(role, environ, monkeypatch)
    assert args.listen == f"0.0.0.0:{ROLES[role]}"
    assert args.executor_target == "dns:///executor-headless:50052"
    assert args.log_level == "info"
    assert args.metrics_port == 9090


def test_every_shared_setting_is_a_flag_of_some_service(compose, monkeypatch, tmp_path: Path) -> None:
    known: set[str] = set()
    for role in PARSED_ROLES:
        known |= parse_role(role, {}, monkeypatch)[1]
    executor_only = {"MODIPICK_BACKEND", "MODIPICK_TFSERVING_TARGET", "MODIPICK_MODEL_BASE"}
    shared = set(k8s_environment("selector", tmp_path)) | set(compose["x-modipick-env"])
    assert shared - known - executor_only == set()


def test_loadgen_arguments_parse(compose) -> None:
    from modipick.loadgen.cli import build_parser

    parser = build_parser({})
    args = parser.parse_args(compose["services"]["loadgen"]["command"])
    assert (args.command, args.target, args.report_outcomes) == ("run", "envoy:50051", True)
    job = by_kind(rendered(KUSTOMIZE_DIRS["dev"]), "Job")["loadgen"]
    args = parser.parse_args(job["spec"]["template"]["spec"]["containers"][0]["args"])
    assert (args.command, args.target) == ("run", "selector-lb:50051")


def test_model_builder_arguments_parse(compose) -> None:
    from modipick.zoo.cli import _parser

    args = _parser().parse_args(compose["services"]["model-builder"]["command"])
    assert (args.command, args.pool, str(args.out)) == ("build", "digits", "/models")
    job = yaml.safe_load_all((K8S / "base" / "models.yaml").read_text())
    builder = next(d for d in job if d["kind"] == "Job")["spec"]["template"]["spec"]["containers"][0]
    assert _parser().parse_args(builder["args"]).out == args.out
