"""The Prometheus Operator component (deploy/k8s/components/prometheus-operator): rendered into the
prod overlay by a real Kustomize, its PodMonitors valid against the operator's CRD schema, scraping
every pod the annotation-based config scrapes, on the same port and path, under the same job names
(so alerts.yaml and the dashboard work unchanged), through ports the NetworkPolicies open."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from deploy_custom_resources import custom_resource_errors
from deploy_support import COMPONENT_DIRS, DEPLOY, K8S, KUSTOMIZE_DIRS, WORKLOAD_KINDS, rendered


@pytest.fixture(scope="module")
def with_operator(tmp_path_factory) -> list[dict]:
    k8s = tmp_path_factory.mktemp("k8s") / "k8s"
    shutil.copytree(K8S, k8s)
    overlay = k8s / "overlays" / "prod-operator"
    overlay.mkdir()
    component = COMPONENT_DIRS["prometheus-operator"].relative_to(K8S)
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "namespace": "modipick",
        "resources": ["../prod"], "components": [f"../../{component}"]}))
    return rendered(overlay)


def annotation_job(component: str) -> str:
    """The job name deploy/prometheus/prometheus-k8s.yml gives a pod of `component`."""
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus-k8s.yml").read_text())
    for rule in config["scrape_configs"][0]["relabel_configs"]:
        if rule.get("target_label") == "job" and re.fullmatch(rule["regex"], component):
            return re.sub(rule["regex"], rule.get("replacement", "$1").replace("$", "\\"), component)
    raise AssertionError(f"prometheus-k8s.yml names no job for {component}")


def operator_job(endpoint: dict, component: str) -> str:
    job = component
    for rule in endpoint.get("relabelings", []):
        if rule.get("targetLabel") != "job":
            continue
        sources = rule.get("sourceLabels", [])
        value = component if sources == ["__meta_kubernetes_pod_label_app_kubernetes_io_component"] else ""
        match = re.fullmatch(rule.get("regex", "(.*)"), value)
        assert match, rule
        job = match.expand(rule.get("replacement", "$1").replace("$", "\\"))
    return job


def scraped_pods(docs: list[dict]) -> dict[str, dict]:
    return {d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]: d["spec"]["template"]
            for d in docs if d["kind"] in WORKLOAD_KINDS
            and d["spec"]["template"]["metadata"].get("annotations", {}).get("prometheus.io/scrape") == "true"}


def selects(selector: dict, labels: dict) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    return all(labels.get(e["key"]) in e["values"] for e in selector.get("matchExpressions", [])
               if e["operator"] == "In")


def test_pod_monitors_validate_against_the_operator_schema(with_operator) -> None:
    monitors = [d for d in with_operator if d["kind"] == "PodMonitor"]
    assert len(monitors) >= 1
    assert [e for m in monitors for e in custom_resource_errors(m)] == []
    assert all(m["metadata"]["namespace"] == "modipick" for m in monitors)


def test_pod_monitors_scrape_what_the_annotations_promise_under_the_same_jobs(with_operator) -> None:
    monitors = [d for d in with_operator if d["kind"] == "PodMonitor"]
    covered = {}
    for monitor in monitors:
        for component, template in scraped_pods(with_operator).items():
            if not selects(monitor["spec"]["selector"], template["metadata"]["labels"]):
                continue
            ports = {p["name"]: p["containerPort"] for c in template["spec"]["containers"] for p in c.get("ports", [])}
            annotations = template["metadata"]["annotations"]
            for endpoint in monitor["spec"]["podMetricsEndpoints"]:
                assert endpoint["port"] in ports, (monitor["metadata"]["name"], component, endpoint["port"])
                assert str(ports[endpoint["port"]]) == annotations["prometheus.io/port"], component
                assert endpoint["path"] == annotations["prometheus.io/path"], component
                assert operator_job(endpoint, component) == annotation_job(component), component
                covered[component] = monitor["metadata"]["name"]
    assert set(covered) == set(scraped_pods(with_operator)), covered


def test_the_component_is_optional() -> None:
    for name in ("base", "dev", "prod", "gpu"):
        assert not [d for d in rendered(KUSTOMIZE_DIRS[name]) if d["kind"] == "PodMonitor"], name
