"""What keeps a rollout and a scale-out working once applied: the HPA owns the Selector count,
spreading never leaves a pod Pending, every gRPC server ages its connections out so new pods get
calls, TF Serving's threads fit its CPU limit, and the GPU overlay needs only the device plugin."""

from __future__ import annotations

import importlib
import math
from pathlib import Path

import pytest
import yaml

from deploy_support import COMPOSE_DIR, KUSTOMIZE_DIRS, ROLES, by_kind, pod_specs, rendered, role_environment

AGE_ARGUMENTS = ("grpc.max_connection_age_ms", "grpc.max_connection_age_grace_ms")


@pytest.fixture(scope="module", params=sorted(KUSTOMIZE_DIRS))
def overlay(request) -> tuple[str, list[dict]]:
    return request.param, rendered(KUSTOMIZE_DIRS[request.param])


def test_autoscaled_deployments_set_no_replicas(overlay) -> None:
    name, docs = overlay
    deployments = by_kind(docs, "Deployment")
    scaled = [hpa["spec"]["scaleTargetRef"]["name"] for hpa in by_kind(docs, "HorizontalPodAutoscaler").values()]
    assert "selector" in scaled
    for target in scaled:
        assert "replicas" not in deployments[target]["spec"], (name, target)


def test_topology_spread_cannot_leave_pods_pending(overlay) -> None:
    name, docs = overlay
    for where, spec in pod_specs(docs).items():
        constraints = spec.get("topologySpreadConstraints", [])
        keys = [c["topologyKey"] for c in constraints]
        assert len(keys) == len(set(keys)), (name, where, keys)
        for constraint in constraints:
            # DoNotSchedule leaves a pod Pending when one node is full while others have room
            assert constraint["whenUnsatisfiable"] == "ScheduleAnyway", (name, where, constraint)
            # tainted nodes the pod cannot use (GPU, control plane) are not places to spread over
            assert constraint.get("nodeTaintsPolicy") == "Honor", (name, where, constraint)
            assert constraint.get("nodeAffinityPolicy", "Honor") == "Honor", (name, where, constraint)
            labels = spec_labels(docs, where)
            assert constraint["labelSelector"]["matchLabels"].items() <= labels.items(), (name, where)


def spec_labels(docs: list[dict], where: str) -> dict:
    kind, name = where.split("/", 1)
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)["spec"]["template"]["metadata"]["labels"]


def test_prod_spreads_selectors_over_nodes_and_zones() -> None:
    spec = by_kind(rendered(KUSTOMIZE_DIRS["prod"]), "Deployment")["selector"]["spec"]["template"]["spec"]
    assert [c["topologyKey"] for c in spec["topologySpreadConstraints"]] == [
        "kubernetes.io/hostname", "topology.kubernetes.io/zone"]


def parsed_settings(role: str, environ: dict[str, str]):
    module = importlib.import_module(f"modipick.{role}.__main__")
    return module.parse_settings([], environ=environ)[0]


@pytest.mark.parametrize("role", sorted(ROLES))
def test_every_modipick_server_ages_its_connections_out(overlay, role: str, tmp_path: Path) -> None:
    name, docs = overlay
    settings = parsed_settings(role, role_environment(docs, role, tmp_path))
    assert settings.max_connection_age_s and settings.max_connection_age_s <= 300, (name, role)
    assert settings.max_connection_age_grace_s and settings.max_connection_age_grace_s >= 1, (name, role)


@pytest.mark.parametrize("role", sorted(ROLES))
def test_compose_servers_age_their_connections_except_the_streamed_executor(role: str) -> None:
    compose = yaml.safe_load((COMPOSE_DIR / "compose.yaml").read_text())
    environ = {k: str(v) for k, v in compose["services"][role]["environment"].items()}
    settings = parsed_settings(role, environ)
    if role == "executor":
        # the Selectors reach it by address, over a long-lived ExecuteStream a GOAWAY would cut
        assert not environ["MODIPICK_EXECUTOR_TARGET"].startswith("dns:///")
        assert settings.max_connection_age_s is None
    else:
        assert settings.max_connection_age_s and settings.max_connection_age_grace_s


def test_kubernetes_selectors_reach_executors_by_name_so_aging_never_cuts_a_stream(overlay) -> None:
    # --executor-transport auto sends unary calls to a dns:/// name: GOAWAY lets them finish
    name, docs = overlay
    config = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("modipick-config"))
    assert config["data"]["MODIPICK_EXECUTOR_TARGET"].startswith("dns:///")
    assert config["data"].get("MODIPICK_EXECUTOR_TRANSPORT", "auto") in ("auto", "unary")


def flag_values(args: list[str]) -> dict[str, str]:
    return dict(arg.removeprefix("--").split("=", 1) for arg in args if arg.startswith("--") and "=" in arg)


def channel_arguments(text: str) -> dict[str, int]:
    return {key: int(value) for key, value in (item.split("=", 1) for item in text.split(","))}


def cpus(quantity: str) -> float:
    return int(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def test_tfserving_ages_connections_and_sizes_its_threads_to_its_cpu_limit(overlay) -> None:
    name, docs = overlay
    server = by_kind(docs, "Deployment")["tfserving"]["spec"]["template"]["spec"]["containers"][0]
    flags = flag_values(server["args"])
    arguments = channel_arguments(flags["grpc_channel_arguments"])
    assert set(AGE_ARGUMENTS) <= set(arguments), (name, arguments)
    assert 0 < arguments["grpc.max_connection_age_ms"] <= 300_000
    limit = math.ceil(cpus(server["resources"]["limits"]["cpu"]))
    assert int(flags["tensorflow_intra_op_parallelism"]) == limit, (name, flags, limit)
    assert 1 <= int(flags["tensorflow_inter_op_parallelism"]) <= limit, (name, flags, limit)
    assert 1 <= int(flags["rest_api_num_threads"]) <= limit, (name, flags, limit)


def test_compose_tfserving_ages_its_connections() -> None:
    compose = yaml.safe_load((COMPOSE_DIR / "compose.yaml").read_text())
    arguments = channel_arguments(flag_values(compose["services"]["tfserving"]["command"])["grpc_channel_arguments"])
    assert set(AGE_ARGUMENTS) <= set(arguments)


# Node labels the NVIDIA device plugin alone does not set (GPU Feature Discovery / NFD do).
FEATURE_DISCOVERY_PREFIXES = ("nvidia.com/", "feature.node.kubernetes.io/")


def test_gpu_overlay_needs_only_the_device_plugin_and_waits_without_the_gpu_image() -> None:
    docs = rendered(KUSTOMIZE_DIRS["gpu"])
    spec = by_kind(docs, "Deployment")["tfserving"]["spec"]["template"]["spec"]
    selected = list(spec.get("nodeSelector", {}))
    for term in spec.get("affinity", {}).get("nodeAffinity", {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution", {}).get("nodeSelectorTerms", []):
        selected += [e["key"] for e in term.get("matchExpressions", [])]
    assert not [k for k in selected if k.startswith(FEATURE_DISCOVERY_PREFIXES)], selected
    server = spec["containers"][0]
    assert server["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    assert server["image"].endswith("-gpu")
    for init in spec.get("initContainers", []):
        assert not init["image"].startswith("tensorflow/serving"), init["image"]
        assert "nvidia.com/gpu" not in init["resources"].get("limits", {})
