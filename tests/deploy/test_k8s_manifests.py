"""Every base and overlay rendered by a real Kustomize and each resource validated against the
Kubernetes OpenAPI schemas shipped offline by kubernetes-validate (strict: unknown fields fail),
then checked for the properties the deployment promises (probes, limits, non-root, balancing)."""

from __future__ import annotations

import shutil
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from deploy_custom_resources import custom_resource_errors, is_custom
from deploy_support import K8S, KUSTOMIZE_DIRS, ROLES, WORKLOAD_KINDS, by_kind, pod_specs, rendered
from deploy_kustomize_tree import kustomize_command

# Oldest release the manifests target (native gRPC probes are GA since 1.27) and the newest schemas.
K8S_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())


@pytest.fixture(scope="module", params=sorted(KUSTOMIZE_DIRS))
def overlay(request) -> tuple[str, list[dict]]:
    return request.param, rendered(KUSTOMIZE_DIRS[request.param])


def schema_errors(docs: list[dict], version: str) -> list[str]:
    errors = []
    for doc in docs:
        where = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        if is_custom(doc):
            errors += custom_resource_errors(doc)
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            errors.append(f"{where}: {path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            errors.append(f"{where}: no schema: {exc}")
    return errors


def test_a_kustomize_renderer_is_used() -> None:
    # kubectl (with built-in Kustomize) is part of this machine image; without it the other tests
    # fall back to per-file validation, which cannot see generated ConfigMaps or applied patches.
    assert kustomize_command() is not None, (
        "no Kustomize renderer: install kubectl >= 1.27 (it embeds Kustomize v5) or kustomize")


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_resource_validates_against_the_kubernetes_schema(overlay, version) -> None:
    name, docs = overlay
    assert len(docs) >= 20, f"{name} rendered only {len(docs)} resources"
    assert schema_errors(docs, version) == []


def test_schema_validation_rejects_a_broken_manifest(tmp_path: Path) -> None:
    k8s = tmp_path / "k8s"
    shutil.copytree(K8S, k8s)
    selector = k8s / "base" / "selector.yaml"
    text = selector.read_text()
    assert "averageUtilization: 60" in text and "containerPort: 50051" in text
    selector.write_text(text.replace("averageUtilization: 60", "averageUtilization: sixty", 1)
                        .replace("containerPort: 50051", "containerPort: 50051\n              hostPorts: 1", 1))
    errors = schema_errors(rendered(k8s / "overlays" / "prod"), K8S_VERSIONS[0])
    assert any("HorizontalPodAutoscaler/selector" in e and "averageUtilization" in e for e in errors), errors
    assert any("Deployment/selector" in e and "hostPorts" in e for e in errors), errors
    assert len(errors) == 2, errors


def test_pods_run_non_root_read_only_without_capabilities(overlay) -> None:
    name, docs = overlay
    for where, spec in pod_specs(docs).items():
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", where
        assert spec.get("automountServiceAccountToken") is False, where
        for container in spec["containers"] + spec.get("initContainers", []):
            ctx = container["securityContext"]
            assert ctx["readOnlyRootFilesystem"] is True, (where, container["name"])
            assert ctx["allowPrivilegeEscalation"] is False, (where, container["name"])
            assert ctx["capabilities"]["drop"] == ["ALL"], (where, container["name"])


def test_every_container_has_requests_and_limits(overlay) -> None:
    name, docs = overlay
    for where, spec in pod_specs(docs).items():
        for container in spec["containers"] + spec.get("initContainers", []):
            resources = container["resources"]
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(kind, {})), (where, container["name"], kind)


def test_images_are_pinned(overlay) -> None:
    name, docs = overlay
    for where, spec in pod_specs(docs).items():
        for container in spec["containers"] + spec.get("initContainers", []):
            image = container["image"]
            assert ":" in image and not image.endswith(":latest"), (where, image)


def grpc_health_probe(probe: dict) -> tuple[int, str]:
    """(port, service) a readiness/liveness probe checks with grpc.health.v1: the kubelet's native
    gRPC probe, or, on a TLS server (native probes speak plaintext only), the exec probe with
    modipick.runtime.healthcheck and the pod's certificate."""
    if "grpc" in probe:
        assert "exec" not in probe, probe
        return probe["grpc"]["port"], probe["grpc"].get("service", "")
    command = probe["exec"]["command"]
    assert command[:3] == ["python", "-m", "modipick.runtime.healthcheck"], command
    assert "--tls-dir" in command and "--server-name" in command, command
    positional = [a for i, a in enumerate(command[3:], 3)
                  if not a.startswith("--") and not command[i - 1].startswith("--")]
    target, service = positional[0], (positional[1] if len(positional) > 1 else "")
    assert target.startswith("127.0.0.1:"), command
    return int(target.rsplit(":", 1)[1]), service


def test_services_have_grpc_health_probes(overlay) -> None:
    name, docs = overlay
    deployments = by_kind(docs, "Deployment")
    for role, port in ROLES.items():
        container = next(c for c in deployments[role]["spec"]["template"]["spec"]["containers"] if c["name"] == role)
        assert {"name": "grpc", "containerPort": port} in container["ports"]
        assert grpc_health_probe(container["readinessProbe"])[0] == port, role
        assert container["startupProbe"], role
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        assert env["MODIPICK_LISTEN"] == f"0.0.0.0:{port}"
    for role in ("selector", "profiler"):
        container = deployments[role]["spec"]["template"]["spec"]["containers"][0]
        assert grpc_health_probe(container["livenessProbe"])[0] == ROLES[role]
    # Executor readiness = its service's health, SERVING only while its models are AVAILABLE.
    executor = deployments["executor"]["spec"]["template"]["spec"]["containers"][0]
    assert grpc_health_probe(executor["readinessProbe"])[1] == "modipick.v1.ExecutorService"


def test_services_select_existing_pods(overlay) -> None:
    name, docs = overlay
    pod_labels = [d["spec"]["template"]["metadata"]["labels"] for d in docs if d["kind"] in WORKLOAD_KINDS]
    for svc_name, svc in by_kind(docs, "Service").items():
        selector = svc["spec"]["selector"]
        assert any(selector.items() <= labels.items() for labels in pod_labels), (name, svc_name)
        for port in svc["spec"]["ports"]:
            target = port["targetPort"]
            if isinstance(target, str):
                named = {p["name"] for d in docs if d["kind"] in WORKLOAD_KINDS
                         and selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
                         for c in d["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])}
                assert target in named, (name, svc_name, target)


def test_every_deployment_has_a_disruption_budget(overlay) -> None:
    name, docs = overlay
    budgets = list(by_kind(docs, "PodDisruptionBudget").values())
    for dep_name, dep in by_kind(docs, "Deployment").items():
        labels = dep["spec"]["template"]["metadata"]["labels"]
        assert any(b["spec"]["selector"]["matchLabels"].items() <= labels.items() for b in budgets), dep_name
        replicas = dep["spec"].get("replicas", 1)
        for budget in budgets:
            if budget["spec"]["selector"]["matchLabels"].items() <= labels.items():
                # A budget that can never be met blocks node drains forever.
                assert budget["spec"].get("minAvailable", 0) < replicas, (name, dep_name)


def test_selectors_autoscale_and_balance_per_call(overlay) -> None:
    name, docs = overlay
    hpa = by_kind(docs, "HorizontalPodAutoscaler")["selector"]
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "selector"}
    assert 1 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    services = by_kind(docs, "Service")
    assert services["selector-headless"]["spec"]["clusterIP"] == "None"
    assert services["executor-headless"]["spec"]["clusterIP"] == "None"
    # Envoy's selector pool is the headless Service (one address per ready Selector pod).
    envoy_cm = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("envoy-config"))
    envoy = yaml.safe_load(envoy_cm["data"]["envoy.yaml"])
    cluster = next(c for c in envoy["static_resources"]["clusters"] if c["name"] == "selector")
    address = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
    assert (address["address"], address["port_value"]) == ("selector-headless", 50051)
    config = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("modipick-config"))
    assert config["data"]["MODIPICK_EXECUTOR_TARGET"] == "dns:///executor-headless:50052"
    assert config["data"]["MODIPICK_PROFILER_TARGET"] == "profiler:50053"
    assert config["data"]["MODIPICK_BACKEND"] == "tfserving"


def test_referenced_configmaps_secrets_and_claims_exist(overlay) -> None:
    name, docs = overlay
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    external = {("Secret", "modipick-redis")} if name in ("base", "prod", "gpu") else set()
    if name in ("prod", "gpu"):  # created by the operator (docs/deploy.md), never committed
        external |= {("Secret", "modipick-redis-selector"), ("Secret", "modipick-redis-profiler")}
    # Secrets that a rendered cert-manager Certificate fills
    names |= {("Secret", d["spec"]["secretName"]) for d in docs if d["kind"] == "Certificate"}
    for where, spec in pod_specs(docs).items():
        refs = set()
        for container in spec["containers"] + spec.get("initContainers", []):
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    refs.add(("ConfigMap", source["configMapRef"]["name"]))
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref and not ref.get("optional"):
                    refs.add(("Secret", ref["name"]))
        for volume in spec.get("volumes", []):
            if "secret" in volume:
                refs.add(("Secret", volume["secret"]["secretName"]))
            if "configMap" in volume:
                refs.add(("ConfigMap", volume["configMap"]["name"]))
            if "persistentVolumeClaim" in volume:
                refs.add(("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"]))
        assert refs - names - external == set(), (name, where)


def test_redis_in_cluster_for_dev_and_external_secret_for_prod() -> None:
    dev = rendered(KUSTOMIZE_DIRS["dev"])
    assert "redis" in by_kind(dev, "StatefulSet")
    secret = next(d for d in dev if d["kind"] == "Secret")
    assert secret["metadata"]["name"].startswith("modipick-redis-")  # generated, hash-suffixed
    for name in ("prod", "gpu"):
        docs = rendered(KUSTOMIZE_DIRS[name])
        assert by_kind(docs, "StatefulSet") == {} and by_kind(docs, "Secret") == {}
        selector = by_kind(docs, "Deployment")["selector"]["spec"]["template"]["spec"]["containers"][0]
        redis_env = next(e for e in selector["env"] if e["name"] == "MODIPICK_REDIS_URL")
        assert redis_env["valueFrom"]["secretKeyRef"] == {"name": "modipick-redis", "key": "url"}
        claim = by_kind(docs, "PersistentVolumeClaim")["modipick-models"]
        assert claim["spec"]["accessModes"] == ["ReadWriteMany"]


def test_tfserving_serves_the_zoo_models_config_and_gpu_overlay_adds_gpus() -> None:
    for name in ("base", "gpu"):
        docs = rendered(KUSTOMIZE_DIRS[name])
        spec = by_kind(docs, "Deployment")["tfserving"]["spec"]["template"]["spec"]
        server = spec["containers"][0]
        assert "--model_config_file=/models/models.config" in server["args"]
        assert {"name": "models", "mountPath": "/models", "readOnly": True} in server["volumeMounts"]
        image = server["image"]
        if name == "gpu":
            assert image.startswith("tensorflow/serving:") and image.endswith("-gpu")
            assert server["resources"]["limits"]["nvidia.com/gpu"] == "1"
        else:
            assert image.startswith("tensorflow/serving:") and "gpu" not in image
            assert "nvidia.com/gpu" not in server["resources"]["limits"]
    job = by_kind(rendered(KUSTOMIZE_DIRS["base"]), "Job")["model-builder"]
    builder = job["spec"]["template"]["spec"]["containers"][0]
    assert builder["args"] == ["build", "--pool", "digits", "--out", "/models"]
