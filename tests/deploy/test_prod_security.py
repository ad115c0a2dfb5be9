"""The prod overlay's security posture, rendered and checked offline: TLS on the public endpoint
from a Secret that a cert-manager Certificate fills, mutual TLS on every modipick hop with names the
callers really dial, NetworkPolicies that allow exactly the intended hops, and Redis over TLS with
an ACL user per component, all through flags and settings the services really have."""

from __future__ import annotations

import copy
import importlib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from deploy_support import KUSTOMIZE_DIRS, ROLES, WORKLOAD_KINDS, by_kind, rendered, role_environment
from deploy_network_policy import Party, allowed_connections
from modipick.stores.errors import StoreConfigError
from modipick.stores.redis_clients import sync_client
from modipick.stores.redis_options import RedisOptions

LOCKED_DOWN = ("prod", "gpu")
NAMESPACE = "modipick"
REDIS_PORTS = (6379, 6380)


@pytest.fixture(scope="module", params=LOCKED_DOWN)
def overlay(request) -> tuple[str, list[dict]]:
    return request.param, rendered(KUSTOMIZE_DIRS[request.param])


def pod_spec(docs: list[dict], name: str) -> dict:
    return by_kind(docs, "Deployment")[name]["spec"]["template"]["spec"]


def mounted_secret(spec: dict, container: dict, path: str) -> str:
    """The Secret whose volume is mounted at the directory holding `path`."""
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        if path.startswith(mount["mountPath"].rstrip("/") + "/"):
            volume = volumes[mount["name"]]
            assert "secret" in volume, (path, volume)
            key = path[len(mount["mountPath"].rstrip("/")) + 1:]
            items = volume["secret"].get("items")
            assert items is None or key in {i["path"] for i in items}, (path, items)
            return volume["secret"]["secretName"]
    raise AssertionError(f"{path} is on no mounted volume of {container['name']}")


def certificate_for(docs: list[dict], secret: str) -> dict:
    found = [d for d in docs if d["kind"] == "Certificate" and d["spec"]["secretName"] == secret]
    assert len(found) == 1, f"no cert-manager Certificate fills Secret {secret}"
    return found[0]


def issued_by_internal_ca(docs: list[dict], certificate: dict) -> None:
    issuers = by_kind(docs, "Issuer")
    issuer = issuers[certificate["spec"]["issuerRef"]["name"]]
    ca_secret = issuer["spec"]["ca"]["secretName"]
    ca = certificate_for(docs, ca_secret)
    assert ca["spec"]["isCA"] is True
    assert "selfSigned" in issuers[ca["spec"]["issuerRef"]["name"]]["spec"]


def envoy_config(docs: list[dict]) -> dict[str, dict]:
    cm = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("envoy-config"))
    return {name: yaml.safe_load(text) for name, text in cm["data"].items()}


def sds_secret(files: dict[str, dict], config: dict, name: str) -> dict:
    path = config["sds_config"]["path_config_source"]["path"]
    assert path.startswith("/etc/envoy/"), path  # the envoy-config ConfigMap's mount
    resources = files[path.removeprefix("/etc/envoy/")]["resources"]
    return next(r for r in resources if r["name"] == name)


# -- the public endpoint -------------------------------------------------------------------------

def test_the_public_endpoint_serves_tls_from_a_certificate_managed_secret(overlay) -> None:
    name, docs = overlay
    files = envoy_config(docs)
    listener = next(l for l in files["envoy.yaml"]["static_resources"]["listeners"] if l["name"] == "selector_grpc")
    assert listener["address"]["socket_address"]["port_value"] == 50051
    (chain,) = listener["filter_chains"]
    tls = chain["transport_socket"]["typed_config"]
    assert tls["@type"].endswith("tls.v3.DownstreamTlsContext")
    common = tls["common_tls_context"]
    assert common["alpn_protocols"] == ["h2"]
    assert common["tls_params"]["tls_minimum_protocol_version"] in ("TLSv1_2", "TLSv1_3")
    (sds,) = common["tls_certificate_sds_secret_configs"]
    secret = sds_secret(files, sds, sds["name"])["tls_certificate"]
    spec = pod_spec(docs, "selector-lb")
    envoy = spec["containers"][0]
    key_secret = mounted_secret(spec, envoy, secret["private_key"]["filename"])
    assert key_secret == mounted_secret(spec, envoy, secret["certificate_chain"]["filename"]) == "selector-lb-tls"
    assert secret["watched_directory"]["path"] == str(Path(secret["private_key"]["filename"]).parent)
    public = certificate_for(docs, "selector-lb-tls")
    assert public["spec"]["dnsNames"] and "server auth" in public["spec"]["usages"]
    # the only way in from outside is that TLS listener
    service = by_kind(docs, "Service")["selector-lb"]
    assert service["spec"]["type"] == "LoadBalancer"
    assert [p["port"] for p in service["spec"]["ports"]] == [50051]


def test_envoy_calls_selectors_with_mutual_tls(overlay) -> None:
    name, docs = overlay
    files = envoy_config(docs)
    cluster = next(c for c in files["envoy.yaml"]["static_resources"]["clusters"] if c["name"] == "selector")
    tls = cluster["transport_socket"]["typed_config"]
    assert tls["@type"].endswith("tls.v3.UpstreamTlsContext")
    host = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]["address"]
    assert tls["sni"] == host
    common = tls["common_tls_context"]
    (client_sds,) = common["tls_certificate_sds_secret_configs"]
    client = sds_secret(files, client_sds, client_sds["name"])["tls_certificate"]
    validation = sds_secret(files, common["validation_context_sds_secret_config"],
                            common["validation_context_sds_secret_config"]["name"])["validation_context"]
    assert validation["match_typed_subject_alt_names"] == [{"san_type": "DNS", "matcher": {"exact": host}}]
    spec = pod_spec(docs, "selector-lb")
    envoy = spec["containers"][0]
    secret = mounted_secret(spec, envoy, client["private_key"]["filename"])
    assert mounted_secret(spec, envoy, validation["trusted_ca"]["filename"]) == secret
    certificate = certificate_for(docs, secret)
    assert "client auth" in certificate["spec"]["usages"]
    issued_by_internal_ca(docs, certificate)
    # the Selectors' certificate carries the name Envoy checks
    assert host in certificate_for(docs, "modipick-selector-tls")["spec"]["dnsNames"]


# -- mutual TLS between the services -------------------------------------------------------------

def parsed(role: str, environ: dict[str, str]):
    return importlib.import_module(f"modipick.{role}.__main__").parse_settings([], environ=environ)[0]


def dialled_host(target: str) -> str:
    """The host name gRPC checks the server certificate against, for a target like
    dns:///executor-headless:50052 or profiler:50053."""
    return target.removeprefix("dns:///").rsplit(":", 1)[0]


@pytest.mark.parametrize("role", sorted(ROLES))
def test_every_modipick_server_requires_and_presents_certificates(overlay, role: str, tmp_path: Path) -> None:
    name, docs = overlay
    settings = parsed(role, role_environment(docs, role, tmp_path))
    spec = pod_spec(docs, role)
    container = spec["containers"][0]
    server, client = settings.server_tls, settings.downstream_tls
    assert server is not None and server.cert_file and server.key_file, "server TLS is off"
    assert server.ca_file, "client certificates are not required (no --tls-client-ca)"
    assert client is not None and client.cert_file and client.key_file and client.ca_file, "calls are not mTLS"
    secrets = {mounted_secret(spec, container, path) for path in
               (server.cert_file, server.key_file, server.ca_file, client.cert_file, client.key_file, client.ca_file)}
    assert secrets == {f"modipick-{role}-tls"}, secrets
    certificate = certificate_for(docs, f"modipick-{role}-tls")
    assert {"server auth", "client auth"} <= set(certificate["spec"]["usages"])
    issued_by_internal_ca(docs, certificate)


def test_certificates_carry_the_names_callers_dial(overlay, tmp_path: Path) -> None:
    name, docs = overlay
    dialled = {}
    for role in ROLES:
        settings = parsed(role, role_environment(docs, role, tmp_path))
        for attribute, callee in (("executor_target", "executor"), ("profiler_target", "profiler")):
            target = getattr(settings, attribute, "")
            if target:
                dialled.setdefault(callee, set()).add(dialled_host(target))
    assert set(dialled) == {"executor", "profiler"}
    for callee, hosts in dialled.items():
        names = set(certificate_for(docs, f"modipick-{callee}-tls")["spec"]["dnsNames"])
        assert hosts <= names, (callee, hosts - names)


@pytest.mark.parametrize("role", sorted(ROLES))
def test_tls_servers_are_probed_over_tls(overlay, role: str) -> None:
    name, docs = overlay
    spec = pod_spec(docs, role)
    container = spec["containers"][0]
    names = set(certificate_for(docs, f"modipick-{role}-tls")["spec"]["dnsNames"])
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        probe = container[kind]
        assert "grpc" not in probe, f"{role} {kind}: the kubelet's gRPC probe cannot speak TLS"
        if "exec" in probe:
            command = probe["exec"]["command"]
            tls_dir = command[command.index("--tls-dir") + 1]
            assert mounted_secret(spec, container, f"{tls_dir}/tls.key") == f"modipick-{role}-tls"
            assert command[command.index("--server-name") + 1] in names
    assert "exec" in container["readinessProbe"], role


# -- only the intended hops ----------------------------------------------------------------------

def parties(docs: list[dict]) -> list[Party]:
    namespace_labels = (("kubernetes.io/metadata.name", NAMESPACE),)
    out = []
    for doc in docs:
        if doc["kind"] not in WORKLOAD_KINDS:
            continue
        template = doc["spec"]["template"]
        ports = tuple(("TCP", p["containerPort"], p.get("name", "")) for c in template["spec"]["containers"]
                      for p in c.get("ports", []))
        out.append(Party(template["metadata"]["labels"]["app.kubernetes.io/component"], NAMESPACE,
                         tuple(sorted(template["metadata"]["labels"].items())), namespace_labels, ports))
    out += [
        Party("client", None),
        Party("redis", None, ports=tuple(("TCP", p, "") for p in REDIS_PORTS)),
        Party("kube-dns", "kube-system", (("k8s-app", "kube-dns"),), (("kubernetes.io/metadata.name", "kube-system"),),
              (("UDP", 53, "dns"), ("TCP", 53, "dns-tcp"))),
        Party("prometheus", "monitoring", (("app.kubernetes.io/name", "prometheus"),),
              (("kubernetes.io/metadata.name", "monitoring"),)),
        Party("pod-in-namespace", NAMESPACE, (("run", "debug"),), namespace_labels),
        Party("pod-elsewhere", "default", (("app.kubernetes.io/name", "modipick"),),
              (("kubernetes.io/metadata.name", "default"),)),
    ]
    return out


def intended(docs: list[dict]) -> set[tuple[str, str, str, int]]:
    hops = {("client", "envoy", 50051), ("envoy", "selector", 50051),
            ("selector", "executor", 50052), ("selector", "profiler", 50053),
            ("executor", "tfserving", 8500), ("executor", "profiler", 50053), ("profiler", "executor", 50052),
            ("prometheus", "selector", 9090), ("prometheus", "executor", 9090), ("prometheus", "profiler", 9090),
            ("prometheus", "tfserving", 8501), ("prometheus", "envoy", 9902)}
    hops |= {(role, "redis", port) for role in ("selector", "profiler") for port in REDIS_PORTS}
    out = {(src, dst, "TCP", port) for src, dst, port in hops}
    everyone = parties(docs)
    in_namespace = [p.name for p in everyone if p.namespace == NAMESPACE]
    out |= {(name, "kube-dns", protocol, 53) for name in in_namespace for protocol in ("UDP", "TCP")}
    # the public endpoint is open to everyone outside the namespace (in it, only what egress allows)
    out |= {(p.name, "envoy", "TCP", 50051) for p in everyone if p.namespace != NAMESPACE}
    return out


def connections(policies: list[dict], docs: list[dict]) -> set[tuple[str, str, str, int]]:
    """Allowed connections with at least one end in the namespace (the others are not ours to police)."""
    everyone = {p.name: p for p in parties(docs)}
    return {c for c in allowed_connections(policies, list(everyone.values()))
            if NAMESPACE in (everyone[c[0]].namespace, everyone[c[1]].namespace)}


def test_network_policies_allow_exactly_the_intended_hops(overlay) -> None:
    name, docs = overlay
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    actual = connections(policies, docs)
    wanted = intended(docs)
    assert {"missing": sorted(wanted - actual), "extra": sorted(actual - wanted)} == {"missing": [], "extra": []}


def test_the_hop_check_notices_a_policy_that_lets_too_much_in() -> None:
    docs = rendered(KUSTOMIZE_DIRS["prod"])
    policies = copy.deepcopy([d for d in docs if d["kind"] == "NetworkPolicy"])
    tfserving = next(p for p in policies if p["metadata"]["name"] == "tfserving")
    tfserving["spec"]["ingress"].append({"ports": [{"protocol": "TCP", "port": 8500}]})  # from anywhere
    extra = connections(policies, docs) - intended(docs)
    assert {("pod-elsewhere", "tfserving", "TCP", 8500), ("client", "tfserving", "TCP", 8500)} <= extra
    # a Selector still cannot reach TF Serving: its own egress does not allow it
    assert ("selector", "tfserving", "TCP", 8500) not in extra
    # and without the namespace-wide policies a stray pod's egress is no longer restricted
    # (allow-dns selects every pod for egress too, so it goes as well)
    unguarded = [p for p in policies if p["metadata"]["name"] not in ("default-deny", "allow-dns", "tfserving")]
    assert ("pod-in-namespace", "tfserving", "TCP", 8500) in connections(unguarded, docs)


# -- Redis ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("role", ["selector", "profiler"])
def test_redis_is_reached_over_tls_with_the_components_own_acl_user(overlay, role: str, tmp_path: Path) -> None:
    name, docs = overlay
    environ = role_environment(docs, role, tmp_path)
    settings = parsed(role, environ)
    options = settings.store_options
    spec = pod_spec(docs, role)
    container = spec["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["MODIPICK_REDIS_USERNAME"]["valueFrom"]["secretKeyRef"] == {"name": f"modipick-redis-{role}",
                                                                         "key": "username"}
    assert options["username"] == f"modipick-redis-{role}-username"  # the placeholder for that Secret key
    assert options["password"].startswith("secret of MODIPICK_REDIS_PASSWORD")
    config = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("modipick-config"))
    password_file = config["data"]["MODIPICK_REDIS_PASSWORD"].removeprefix("file:")
    assert mounted_secret(spec, container, password_file) == f"modipick-redis-{role}"
    assert mounted_secret(spec, container, options["ca_file"]) == "modipick-redis"
    # with a CA configured the store refuses a plaintext URL: the Secret's url must be rediss://
    ca = tmp_path / "ca.crt"
    ca.write_text("not used\n")
    with pytest.raises(StoreConfigError, match="not rediss"):
        sync_client("redis://redis.example:6379/0", RedisOptions(ca_file=str(ca)))
    assert urlsplit("rediss://redis.example:6380/0").scheme == "rediss"


def test_admin_rpcs_need_a_token_from_an_optional_secret(overlay, tmp_path: Path) -> None:
    name, docs = overlay
    container = pod_spec(docs, "profiler")["containers"][0]
    token = next(e for e in container["env"] if e["name"] == "MODIPICK_ADMIN_TOKEN")
    assert token["valueFrom"]["secretKeyRef"] == {"name": "modipick-admin", "key": "token", "optional": True}
    # without that Secret the setting is absent and the Profiler refuses admin RPCs
    assert parsed("profiler", role_environment(docs, "profiler", tmp_path)).admin_token is None
    assert parsed("profiler", {**role_environment(docs, "profiler", tmp_path),
                               "MODIPICK_ADMIN_TOKEN": "s3cret"}).admin_token == "s3cret"
