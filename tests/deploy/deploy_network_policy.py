"""A small evaluator of Kubernetes NetworkPolicy semantics (networking.k8s.io/v1), enough to list
which connections a set of policies allows between the pods of a rendered overlay and a few
parties outside it. A connection needs both: egress allowed at its source and ingress allowed at
its destination; a pod no policy selects (for that direction) is unrestricted in it; rules of all
policies selecting a pod are added up. Traffic from the node (kubelet probes) is out of scope, as
it is for NetworkPolicies themselves."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Party:
    name: str
    namespace: str | None                      # None: outside the cluster (an IP address)
    labels: tuple[tuple[str, str], ...] = ()
    namespace_labels: tuple[tuple[str, str], ...] = ()
    ports: tuple[tuple[str, int, str], ...] = field(default=())  # (protocol, number, name)

    def label_dict(self) -> dict[str, str]:
        return dict(self.labels)


def selects(selector: dict | None, labels: dict[str, str]) -> bool:
    """A LabelSelector: matchLabels and matchExpressions (In, NotIn, Exists, DoesNotExist)."""
    if selector is None:
        return True
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def peer_matches(peer: dict, party: Party, policy_namespace: str) -> bool:
    if "ipBlock" in peer:
        # only parties outside the cluster are modelled by address; pod addresses are not used here
        return party.namespace is None
    if party.namespace is None:
        return False
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], dict(party.namespace_labels)):
            return False
    elif party.namespace != policy_namespace:
        return False
    return selects(peer.get("podSelector"), party.label_dict())


def port_matches(rule_ports: list[dict] | None, protocol: str, port: int, destination: Party) -> bool:
    if not rule_ports:
        return True
    for item in rule_ports:
        if item.get("protocol", "TCP") != protocol:
            continue
        wanted = item.get("port")
        if wanted is None:
            return True
        if isinstance(wanted, str):
            if any(p == protocol and n == port and name == wanted for p, n, name in destination.ports):
                return True
        elif wanted <= port <= item.get("endPort", wanted):
            return True
    return False


def _direction_allows(policies: list[dict], pod: Party, other: Party, protocol: str, port: int,
                      destination: Party, direction: str) -> bool:
    if pod.namespace is None:
        return True  # outside the cluster: not governed by these policies
    selecting = [p for p in policies if p["metadata"].get("namespace", pod.namespace) == pod.namespace
                 and selects(p["spec"]["podSelector"], pod.label_dict())
                 and direction in p["spec"].get("policyTypes", ["Ingress"])]
    if not selecting:
        return True
    key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    for policy in selecting:
        namespace = policy["metadata"].get("namespace", pod.namespace)
        for rule in policy["spec"].get(key) or []:
            peers = rule.get(peers_key)
            if peers and not any(peer_matches(peer, other, namespace) for peer in peers):
                continue
            if port_matches(rule.get("ports"), protocol, port, destination):
                return True
    return False


def allowed(policies: list[dict], source: Party, destination: Party, protocol: str, port: int) -> bool:
    return (_direction_allows(policies, source, destination, protocol, port, destination, "Egress")
            and _direction_allows(policies, destination, source, protocol, port, destination, "Ingress"))


def allowed_connections(policies: list[dict], parties: list[Party]) -> set[tuple[str, str, str, int]]:
    """(source, destination, protocol, port) for every port a destination listens on."""
    out = set()
    for source, destination in itertools.product(parties, parties):
        if source == destination:
            continue
        for protocol, port, _ in destination.ports:
            if allowed(policies, source, destination, protocol, port):
                out.add((source.name, destination.name, protocol, port))
    return out
