"""Every Envoy configuration in deploy/ parsed into Envoy's own protos (xds-protos, generated from
envoyproxy/data-plane-api; strict: an unknown or mistyped field fails, as `envoy --mode validate`
would), and the Selector cluster's circuit breakers sized for the Selector fleet behind it."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml
from google.protobuf import json_format

# Every "@type" the configs use must be importable for json_format to resolve it.
from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2  # noqa: F401
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2  # noqa: F401
from envoy.extensions.retry.host.previous_hosts.v3 import previous_hosts_pb2  # noqa: F401
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2, tls_pb2  # noqa: F401
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2  # noqa: F401
from envoy.service.discovery.v3 import discovery_pb2

from deploy_support import COMPOSE_DIR, DEPLOY, KUSTOMIZE_DIRS, by_kind, rendered

ENVOY_CONFIGS = sorted(p for p in DEPLOY.rglob("*.yaml") if p.parent.name == "config" and p.name.startswith("envoy")
                       ) + [COMPOSE_DIR / "envoy.yaml"]
SDS_FILES = sorted(p for p in DEPLOY.rglob("sds-*.yaml"))


def parse_bootstrap(config: dict) -> bootstrap_pb2.Bootstrap:
    return json_format.ParseDict(config, bootstrap_pb2.Bootstrap())


@pytest.mark.parametrize("path", ENVOY_CONFIGS, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_envoy_config_parses_as_a_bootstrap(path: Path) -> None:
    bootstrap = parse_bootstrap(yaml.safe_load(path.read_text()))
    assert {c.name for c in bootstrap.static_resources.clusters} >= {"selector"}


@pytest.mark.parametrize("path", SDS_FILES, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_sds_files_parse_as_discovery_responses_of_secrets(path: Path) -> None:
    response = json_format.ParseDict(yaml.safe_load(path.read_text()), discovery_pb2.DiscoveryResponse())
    assert response.resources
    for resource in response.resources:
        secret = secret_pb2.Secret()
        assert resource.Unpack(secret), resource.type_url
        assert secret.name


def sds_references(node: object) -> list[tuple[str, str]]:
    """(secret name, SDS file path) of every file-based SDS reference in an Envoy config."""
    found = []
    if isinstance(node, dict):
        if "sds_config" in node and "path_config_source" in node["sds_config"]:
            found.append((node["name"], node["sds_config"]["path_config_source"]["path"]))
        for value in node.values():
            found += sds_references(value)
    elif isinstance(node, list):
        for value in node:
            found += sds_references(value)
    return found


@pytest.mark.parametrize("path", [p for p in ENVOY_CONFIGS if sds_references(yaml.safe_load(p.read_text()))],
                         ids=lambda p: str(p.relative_to(DEPLOY)))
def test_each_sds_file_holds_exactly_the_one_secret_envoy_asks_it_for(path: Path) -> None:
    # Envoy's SdsApi refuses a file-based SDS update of more or fewer than one Secret, or of another name
    for name, sds_path in sds_references(yaml.safe_load(path.read_text())):
        local = path.parent / Path(sds_path).name  # mounted from the same ConfigMap as the config
        assert local.is_file(), sds_path
        resources = yaml.safe_load(local.read_text())["resources"]
        assert [r["name"] for r in resources] == [name], (sds_path, resources)


def test_a_mistyped_envoy_field_is_rejected() -> None:
    config = yaml.safe_load((COMPOSE_DIR / "envoy.yaml").read_text())
    config["static_resources"]["clusters"][0]["circuit_breakers"]["thresholds"][0]["max_request"] = 1
    with pytest.raises(json_format.ParseError, match="max_request"):
        parse_bootstrap(config)


def selector_route(bootstrap: bootstrap_pb2.Bootstrap):
    """The route that sends calls to the selector cluster."""
    for listener in bootstrap.static_resources.listeners:
        for chain in listener.filter_chains:
            for network_filter in chain.filters:
                manager = http_connection_manager_pb2.HttpConnectionManager()
                if network_filter.typed_config.Unpack(manager):
                    for host in manager.route_config.virtual_hosts:
                        for rule in host.routes:
                            if rule.route.cluster == "selector":
                                return rule.route
    raise AssertionError("no route to the selector cluster")


@pytest.mark.parametrize("path", ENVOY_CONFIGS, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_a_clients_calls_hash_to_one_selector_and_a_retry_goes_elsewhere(path: Path) -> None:
    """Consistent hashing on the SDK's client-id header keeps a client's return-leg model in one
    replica's cache; a retried call must not hash back to the replica that refused it."""
    from modipick.v1.contract import CLIENT_ID_KEY

    bootstrap = parse_bootstrap(yaml.safe_load(path.read_text()))
    cluster = next(c for c in bootstrap.static_resources.clusters if c.name == "selector")
    assert cluster.lb_policy == cluster.MAGLEV
    route = selector_route(bootstrap)
    assert [h.header.header_name for h in route.hash_policy] == [CLIENT_ID_KEY]
    assert [p.name for p in route.retry_policy.retry_host_predicate] == ["envoy.retry_host_predicates.previous_hosts"]


def selector_thresholds(config: dict) -> dict:
    cluster = next(c for c in config["static_resources"]["clusters"] if c["name"] == "selector")
    return next(t for t in cluster["circuit_breakers"]["thresholds"] if t.get("priority", "DEFAULT") == "DEFAULT")


def envoy_concurrency(args: list[str]) -> int:
    return int(args[args.index("--concurrency") + 1])


def check_sized(thresholds: dict, selectors: int, inflight: int, workers: int, *, bounded: bool = True) -> None:
    fleet = selectors * inflight
    # every Selector's full share fits, and the breaker still means something (not "unlimited")
    assert fleet <= thresholds["max_requests"], (thresholds, fleet)
    assert not bounded or thresholds["max_requests"] <= 4 * fleet, (thresholds, fleet)
    assert thresholds["max_connections"] >= selectors * workers, thresholds
    assert thresholds["max_pending_requests"] >= 1024, thresholds
    budget = thresholds["retry_budget"]
    assert 0 < budget["budget_percent"]["value"] <= 50 and budget["min_retry_concurrency"] >= 10, budget


@pytest.mark.parametrize("overlay", sorted(KUSTOMIZE_DIRS))
def test_circuit_breakers_are_sized_for_the_selector_fleet(overlay: str) -> None:
    docs = rendered(KUSTOMIZE_DIRS[overlay])
    envoy_cm = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("envoy-config"))
    config = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("modipick-config"))
    hpa = by_kind(docs, "HorizontalPodAutoscaler")["selector"]
    envoy = by_kind(docs, "Deployment")["selector-lb"]["spec"]["template"]["spec"]["containers"][0]
    workers = envoy_concurrency(envoy["args"])
    assert workers == math.ceil(float(envoy["resources"]["limits"]["cpu"])), envoy["args"]
    inflight = int(config["data"]["MODIPICK_MAX_INFLIGHT"])
    # each Envoy replica must carry the whole fleet when the other one is gone
    # (dev keeps the base's breakers, sized for more Selectors than its small HPA allows)
    check_sized(selector_thresholds(yaml.safe_load(envoy_cm["data"]["envoy.yaml"])), hpa["spec"]["maxReplicas"],
                inflight, workers, bounded=overlay != "dev")


def test_compose_circuit_breakers_are_sized_for_its_selectors() -> None:
    compose = yaml.safe_load((COMPOSE_DIR / "compose.yaml").read_text())
    inflight = int(compose["services"]["selector"]["environment"]["MODIPICK_MAX_INFLIGHT"])
    thresholds = selector_thresholds(yaml.safe_load((COMPOSE_DIR / "envoy.yaml").read_text()))
    check_sized(thresholds, compose["services"]["selector"]["deploy"]["replicas"], inflight,
                envoy_concurrency(compose["services"]["envoy"]["command"]))
