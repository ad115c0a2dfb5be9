"""Shared paths, the metric contract and rendered manifests for the deployment tests (offline: no
cluster, no Docker). A plain module, not a conftest, so its name cannot clash with other test folders."""

from __future__ import annotations

import functools
import shutil
import sys
from pathlib import Path

import pytest

from deploy_kustomize_tree import kustomize_command, raw_resources, render

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE_DIR = DEPLOY / "compose"
DOCKER_DIR = DEPLOY / "docker"
KUSTOMIZE_DIRS = {
    "base": K8S / "base",
    "dev": K8S / "overlays" / "dev",
    "prod": K8S / "overlays" / "prod",
    "gpu": K8S / "overlays" / "gpu",
}
# Kustomize Components: optional parts an overlay adds with `components:` (not built on their own).
COMPONENT_DIRS = {
    "prometheus-operator": K8S / "components" / "prometheus-operator",
}
ROLES = {"selector": 50051, "executor": 50052, "profiler": 50053}

# The metrics the services export: name -> (type, labels).
METRICS: dict[str, tuple[str, frozenset[str]]] = {
    "modipick_requests_total": ("counter", frozenset({"policy", "disposition"})),
    "modipick_sla_met_total": ("counter", frozenset({"policy"})),
    "modipick_budget_seconds": ("histogram", frozenset()),
    "modipick_e2e_seconds": ("histogram", frozenset({"policy"})),
    "modipick_selections_total": ("counter", frozenset({"model", "reason"})),
    "modipick_profile_staleness_seconds": ("gauge", frozenset()),
    "modipick_executor_queue_seconds": ("histogram", frozenset({"model", "version"})),
    "modipick_executor_execution_seconds": ("histogram", frozenset({"model", "version"})),
    "modipick_redis_errors_total": ("counter", frozenset()),
    "modipick_observations_total": ("counter", frozenset({"result"})),
    "modipick_executor_observations_total": ("counter", frozenset({"result"})),
    "modipick_outcome_reports_total": ("counter", frozenset({"result"})),
    "modipick_return_leg_class_capped_total": ("counter", frozenset()),
    "modipick_security_refusals_total": ("counter", frozenset({"reason"})),
    "modipick_return_leg_stream_total": ("counter", frozenset({"result"})),
    "modipick_return_leg_stream_read_failures_total": ("counter", frozenset()),
    "modipick_return_legs_total": ("counter", frozenset({"result"})),
    "modipick_return_leg_write_failures_total": ("counter", frozenset()),
    "modipick_return_legs_pending": ("gauge", frozenset()),
    "modipick_selector_decisions_by_return_leg_source_total": ("counter", frozenset({"return_leg_source"})),
    "modipick_client_return_legs_total": ("counter", frozenset({"event"})),
    "modipick_grpc_server_handled_total": ("counter", frozenset({"service", "method", "code"})),
    "modipick_grpc_server_handling_seconds": ("histogram", frozenset({"service", "method"})),
}
# Labels Prometheus itself attaches to every series (scrape target, histogram bucket).
TARGET_LABELS = frozenset({"job", "instance", "namespace", "pod", "le"})


def venv_tool(name: str) -> str:
    """A console script installed next to this interpreter (the dev extra), else from PATH."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: pip install -e '.[dev]' (it is in the dev extra)")
    return found


WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job")


@functools.cache
def rendered(directory: Path) -> list[dict]:
    """The resources a kustomization renders to (real Kustomize); without a renderer on the machine,
    every resource file as written."""
    command = kustomize_command()
    if command is None:
        return raw_resources(directory)
    return render(directory, command)


def by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def pod_specs(docs: list[dict]) -> dict[str, dict]:
    return {f"{d['kind']}/{d['metadata']['name']}": d["spec"]["template"]["spec"]
            for d in docs if d["kind"] in WORKLOAD_KINDS}


def role_environment(docs: list[dict], role: str, files: Path | None = None) -> dict[str, str]:
    """The MODIPICK_* environment of a role's container in rendered `docs`: the modipick-config
    ConfigMap, then the container's own env (a value from a Secret as a placeholder). With `files`,
    each `file:/path` value (a mounted Secret) points at a stand-in file written there instead."""
    config = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("modipick-config"))
    container = by_kind(docs, "Deployment")[role]["spec"]["template"]["spec"]["containers"][0]
    env = dict(config["data"])
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            if ref.get("optional"):
                continue  # an optional Secret may be absent: the setting keeps its default
            env[item["name"]] = ("redis://from-secret:6379/0" if item["name"] == "MODIPICK_REDIS_URL"
                                 else f"{ref['name']}-{ref['key']}")
    if files is not None:
        for name, value in env.items():
            if value.startswith("file:"):
                stand_in = files / value[len("file:"):].strip("/").replace("/", "_")
                stand_in.write_text(f"secret of {name}\n")
                env[name] = f"file:{stand_in}"
    return env
