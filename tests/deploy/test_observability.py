"""Grafana dashboard, Prometheus config and alert rules, Envoy configs: they parse, they query only
the metrics the services export (conftest.METRICS), with those metrics' labels, and cover them all."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from deploy_support import COMPOSE_DIR, DEPLOY, K8S, METRICS, REPO, TARGET_LABELS

DASHBOARD = DEPLOY / "grafana" / "modipick-dashboard.json"
ALERTS = DEPLOY / "prometheus" / "alerts.yaml"
REQUIRED_ALERTS = {"ModipickSLAAttainmentLow", "ModipickExplorationRateHigh", "ModipickProfilesStale",
                   "ModipickRedisErrors", "ModipickExecutorQueueGrowing"}
PROMQL_WORDS = {"sum", "by", "without", "rate", "increase", "histogram_quantile", "max", "min", "avg",
                "and", "or", "unless", "offset", "count", "deriv", "on", "ignoring", "group_left", "bool"}
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__range": "1h", "$policy": ".*"}


def metric_uses(expr: str) -> list[tuple[str, set[str]]]:
    """(exported metric name, labels used with it) for each modipick_* series in a PromQL expr."""
    uses = []
    for match in re.finditer(r"\b(modipick_[a-z0-9_]+)(\{[^}]*\})?", expr):
        name, matchers = match.group(1), match.group(2) or ""
        labels = set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matchers))
        uses.append((name, labels))
    return uses


def base_metric(name: str) -> str:
    for suffix in ("_bucket", "_count", "_sum"):
        if name.endswith(suffix) and name[: -len(suffix)] in METRICS:
            assert METRICS[name[: -len(suffix)]][0] == "histogram", name
            return name[: -len(suffix)]
    return name


def aggregation_labels(expr: str) -> set[str]:
    return {label.strip() for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr)
            for label in group.split(",") if label.strip()}


def contract_problems(expr: str) -> list[str]:
    problems = []
    used = metric_uses(expr)
    if not used and "up{" not in expr:
        problems.append(f"queries no modipick metric: {expr}")
    allowed = set(TARGET_LABELS)
    for name, labels in used:
        metric = base_metric(name)
        if metric not in METRICS:
            problems.append(f"unknown metric {name}")
            continue
        allowed |= METRICS[metric][1]
        if labels - METRICS[metric][1] - TARGET_LABELS:
            problems.append(f"{name} has no label(s) {sorted(labels - METRICS[metric][1])}")
        if METRICS[metric][0] == "histogram" and name == metric:
            problems.append(f"histogram {name} queried without _bucket/_count/_sum")
    if aggregation_labels(expr) - allowed:
        problems.append(f"groups by unknown label(s) {sorted(aggregation_labels(expr) - allowed)}: {expr}")
    return problems


def syntax_problems(expr: str) -> list[str]:
    """A light PromQL syntax check (promtool, where installed, does the full one below)."""
    problems = []
    stack = []
    pairs = {")": "(", "]": "[", "}": "{"}
    for ch in re.sub(r'"[^"]*"', '""', expr):
        if ch in "([{":
            stack.append(ch)
        elif ch in pairs:
            if not stack or stack.pop() != pairs[ch]:
                problems.append(f"unbalanced {ch!r}: {expr}")
    if stack:
        problems.append(f"unclosed {stack}: {expr}")
    if expr.count('"') % 2:
        problems.append(f"unbalanced quotes: {expr}")
    for call in re.findall(r"\b([a-z_]+)\s*\(", expr):
        if call not in PROMQL_WORDS:
            problems.append(f"unknown function {call}: {expr}")
    for window in re.findall(r"\[([^\]]+)\]", expr):
        if not re.fullmatch(r"\d+[smhd]|\$__\w+", window):
            problems.append(f"bad range [{window}]: {expr}")
    return problems


def dashboard_exprs(dashboard: dict) -> list[str]:
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def alert_rules() -> list[dict]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def promtool_check(exprs: list[str], tmp_path: Path) -> None:
    """Full PromQL parse through promtool when this machine has it (Debian package `prometheus`)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        return
    rules = {"groups": [{"name": "check", "rules": [{"record": f"check:expr_{i}", "expr": e}
                                                     for i, e in enumerate(exprs)]}]}
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rules))
    done = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def test_dashboard_queries_only_exported_metrics_and_covers_them(dashboard) -> None:
    exprs = dashboard_exprs(dashboard)
    assert len(exprs) >= 15
    problems = [p for e in exprs for p in contract_problems(e) + syntax_problems(e)]
    assert problems == []
    used = {base_metric(name) for e in exprs for name, _ in metric_uses(e)}
    assert used == set(METRICS)


def test_dashboard_promql_parses(dashboard, tmp_path: Path) -> None:
    exprs = []
    for expr in dashboard_exprs(dashboard):
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr, expr
        exprs.append(expr)
    promtool_check(exprs, tmp_path)


def test_dashboard_layout_and_datasource(dashboard) -> None:
    assert dashboard["uid"] == "modipick-overview"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            assert panel["gridPos"]["w"] <= 24
    titles = " ".join(p["title"] for p in dashboard["panels"]).lower()
    for topic in ("sla attainment", "model", "reason", "exploration", "staleness", "queue", "execution", "redis"):
        assert topic in titles, topic


def test_a_dashboard_with_an_unknown_metric_is_rejected() -> None:
    assert contract_problems('sum(rate(modipick_requests_totl[5m]))') == ["unknown metric modipick_requests_totl"]
    assert contract_problems('sum by (model) (rate(modipick_redis_errors_total[5m]))')
    assert syntax_problems("sum(rate(modipick_e2e_seconds_bucket[5m])")


def test_alert_rules_cover_the_required_conditions() -> None:
    rules = alert_rules()
    alerts = {r["alert"]: r for r in rules if "alert" in r}
    assert REQUIRED_ALERTS <= set(alerts)
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in ("page", "warning"), name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
        assert re.fullmatch(r"\d+[smh]", rule["for"]), name
        assert f"docs/operations.md#alert-{name.lower()}" in rule["annotations"]["description"], name
    for rule in rules:
        assert contract_problems(rule["expr"]) == [], rule
        assert syntax_problems(rule["expr"]) == [], rule
    used = {base_metric(n) for r in rules for n, _ in metric_uses(r["expr"])}
    assert used == set(METRICS) - {"modipick_budget_seconds", "modipick_e2e_seconds",
                                   "modipick_executor_execution_seconds"}


def test_alert_rules_parse_with_promtool_when_available(tmp_path: Path) -> None:
    promtool_check([r["expr"] for r in alert_rules()], tmp_path)
    promtool = shutil.which("promtool")
    if promtool:
        done = subprocess.run([promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_is_explained_in_the_operators_guide() -> None:
    guide = (REPO / "docs" / "operations.md").read_text()
    anchors = set(re.findall(r'<a id="([^"]+)"></a>', guide))
    for rule in alert_rules():
        if "alert" in rule:
            assert f"alert-{rule['alert'].lower()}" in anchors, rule["alert"]


def test_prometheus_scrapes_every_service_and_loads_the_rules() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/alerts.yaml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["modipick-selector"]["dns_sd_configs"][0] == {"names": ["selector"], "type": "A", "port": 9090,
                                                              "refresh_interval": "10s"}
    assert jobs["modipick-profiler"]["static_configs"][0]["targets"] == ["profiler:9090"]
    assert jobs["modipick-executor"]["dns_sd_configs"][0]["port"] == 9090
    assert jobs["tfserving"]["metrics_path"] == "/monitoring/prometheus/metrics"
    compose = yaml.safe_load((COMPOSE_DIR / "compose.yaml").read_text())
    mounts = compose["services"]["prometheus"]["volumes"]
    assert "../prometheus/alerts.yaml:/etc/prometheus/alerts.yaml:ro" in mounts
    k8s = yaml.safe_load((DEPLOY / "prometheus" / "prometheus-k8s.yml").read_text())
    assert k8s["scrape_configs"][0]["kubernetes_sd_configs"] == [{"role": "pod"}]


def test_grafana_provisioning_matches_the_compose_mounts() -> None:
    compose = yaml.safe_load((COMPOSE_DIR / "compose.yaml").read_text())
    grafana = compose["services"]["grafana"]
    provider = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "dashboards" / "modipick.yaml").read_text())
    path = provider["providers"][0]["options"]["path"]
    assert f"../grafana/modipick-dashboard.json:{path}/modipick-dashboard.json:ro" in grafana["volumes"]
    source = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yaml").read_text())
    assert source["datasources"][0]["uid"] == "prometheus"
    assert source["datasources"][0]["url"] == "http://prometheus:9090"


@pytest.mark.parametrize("path,upstream", [(COMPOSE_DIR / "envoy.yaml", "selector"),
                                           (K8S / "base" / "config" / "envoy.yaml", "selector-headless")])
def test_envoy_balances_grpc_calls_over_selectors(path: Path, upstream: str) -> None:
    envoy = yaml.safe_load(path.read_text())
    listeners = {l["name"]: l for l in envoy["static_resources"]["listeners"]}
    assert listeners["selector_grpc"]["address"]["socket_address"]["port_value"] == 50051
    manager = listeners["selector_grpc"]["filter_chains"][0]["filters"][0]
    assert manager["name"] == "envoy.filters.network.http_connection_manager"
    routes = manager["typed_config"]["route_config"]["virtual_hosts"][0]["routes"]
    assert routes[0]["route"]["cluster"] == "selector"
    assert routes[0]["route"]["max_stream_duration"]["grpc_timeout_header_max"] == "0s"
    clusters = {c["name"]: c for c in envoy["static_resources"]["clusters"]}
    selector = clusters["selector"]
    assert selector["type"] == "STRICT_DNS"
    assert selector["lb_policy"] == "MAGLEV"  # per call, by the client-id header (test_envoy.py)
    options = selector["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    assert "http2_protocol_options" in options["explicit_http_config"]
    assert "grpc_health_check" in selector["health_checks"][0]
    address = selector["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
    assert (address["address"], address["port_value"]) == (upstream, 50051)
    for listener in listeners.values():
        for chain in listener["filter_chains"]:
            for route in chain["filters"][0]["typed_config"]["route_config"]["virtual_hosts"][0]["routes"]:
                assert route["route"]["cluster"] in clusters


def test_tfserving_exports_prometheus_metrics_where_prometheus_scrapes() -> None:
    compose_copy = (COMPOSE_DIR / "tfserving-monitoring.config").read_text()
    assert compose_copy == (K8S / "base" / "config" / "tfserving-monitoring.config").read_text()
    assert re.search(r'enable:\s*true', compose_copy)
    assert 'path: "/monitoring/prometheus/metrics"' in compose_copy
