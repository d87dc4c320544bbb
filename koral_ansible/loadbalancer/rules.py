"""Desired host rules for a cluster's LoadBalancer Services, and their nftables text (pure).

Every served port becomes ``public_ip:port/proto -> node_i:nodePort`` with the backend nodes
(:func:`koral_ansible.loadbalancer.services.backends`: not the control plane kubeadm excludes) taken in
turn (``numgen inc``: new connections spread over the nodes, as a cloud load balancer spreads
them over its backends). A port is served by one Service only: the older Service keeps it
(creationTimestamp, then namespace/name), a Service with a port taken by koral itself (6443, the
SSH forward range) or by an older Service gets no address, and so does one whose
``spec.loadBalancerIP`` is not the cluster's public address (a cloud that cannot give the
address asked for fails the Service rather than give another). Sources outside the Service's
``loadBalancerSourceRanges`` are dropped before DNAT, as a cloud firewall would. A Service with
``externalTrafficPolicy: Local`` sends only to the backend nodes whose health check answered
(``health``: :mod:`koral_ansible.loadbalancer.health`); with none, its ports drop new connections
(it keeps its address, as a cloud load balancer with no healthy backend keeps its own).

``table ip koral_lb_<cluster>`` is this module's own (``koral_<cluster>`` is the provider's port
forward table); cluster names never contain ``_``, so no cluster's provider table is named like
another cluster's load-balancer table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from koral_ansible.loadbalancer.health import Target
from koral_ansible.loadbalancer.services import LbService
from koral_ansible.providers.local import nft

TABLE_PREFIX = "koral_lb_"
IP_MODE = "Proxy"  # cloud-provider-kind pkg/loadbalancer/server.go: GetLoadBalancer


def table_name(cluster: str) -> str:
    return TABLE_PREFIX + cluster.replace("-", "_")


@dataclass(frozen=True)
class Rule:
    """``public_ip:port/protocol`` -> ``nodes:node_port`` for ``sources``."""

    service: str
    protocol: str
    port: int
    node_port: int
    sources: tuple[IPv4Network, ...]
    nodes: tuple[IPv4Address, ...]  # where it sends to; empty: new connections are dropped


@dataclass
class Plan:
    public_ip: IPv4Address
    nodes: tuple[IPv4Address, ...]
    rules: list[Rule] = field(default_factory=list)
    served: list[LbService] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    backends: dict[str, tuple[IPv4Address, ...]] = field(default_factory=dict)  # served Service -> nodes

    def ingress(self, svc: LbService) -> list[dict[str, object]]:
        """``status.loadBalancer.ingress`` of a served Service (cloud-provider-kind's shape)."""
        ports = [{"port": p.port, "protocol": p.protocol} for p in svc.ports]
        return [{"ip": str(self.public_ip), "ipMode": IP_MODE, "ports": ports}]


def plan(
    public_ip: IPv4Address,
    nodes: Iterable[IPv4Address],
    services: Iterable[LbService],
    reserved_tcp: Iterable[int],
    health: Mapping[Target, bool] | None = None,
) -> Plan:
    """Which Services get which rules (pure; ``services`` in any order; ``health``: the probes of
    the Local Services' health check ports, a target not in it counts as failing)."""
    result = Plan(public_ip, tuple(sorted(set(nodes))))
    taken: dict[tuple[str, int], str] = {("TCP", p): "koral" for p in reserved_tcp}
    for svc in sorted(services, key=lambda s: (s.created, s.key)):
        if not svc.ports:
            result.refused[svc.key] = "no TCP/UDP port with a node port"
            continue
        if not result.nodes:
            result.refused[svc.key] = "no node takes load-balancer traffic"
            continue
        if svc.requested_ip and svc.requested_ip != str(public_ip):
            result.refused[svc.key] = (
                f"spec.loadBalancerIP {svc.requested_ip} is not this cluster's address "
                f"(it has {public_ip} only)"
            )
            continue
        clash = [(p.protocol, p.port) for p in svc.ports if (p.protocol, p.port) in taken]
        if clash:
            proto, port = clash[0]
            result.refused[svc.key] = f"port {port}/{proto} is taken by {taken[(proto, port)]}"
            continue
        nodes = result.nodes
        if svc.local:
            nodes = tuple(n for n in nodes if (health or {}).get((n, svc.health_check_node_port), False))
        for p in svc.ports:
            taken[(p.protocol, p.port)] = svc.key
            result.rules.append(Rule(svc.key, p.protocol, p.port, p.node_port, svc.source_ranges, nodes))
        result.served.append(svc)
        result.backends[svc.key] = nodes
    return result


def health_targets(nodes: Iterable[IPv4Address], services: Iterable[LbService]) -> list[Target]:
    """What to probe for a pass: every backend node at every Local Service's health check port."""
    ports = sorted({s.health_check_node_port for s in services if s.local})
    return [(n, port) for port in ports for n in sorted(set(nodes))]


def _target(nodes: Sequence[IPv4Address], node_port: int) -> str:
    if len(nodes) == 1:
        return f"{nodes[0]}:{node_port}"
    pairs = ", ".join(f"{i} : {ip}" for i, ip in enumerate(nodes))
    return f"numgen inc mod {len(nodes)} map {{ {pairs} }} : {node_port}"


def render(cluster: str, p: Plan) -> str:
    """The nft script replacing the cluster's load-balancer table (create-if-missing, delete, recreate)."""
    table = table_name(cluster)
    sets: list[str] = []
    drops: list[str] = []
    dnat: list[str] = []
    for i, r in enumerate(sorted(p.rules, key=lambda r: (r.protocol, r.port))):
        proto = r.protocol.lower()
        match = f"ip daddr {p.public_ip} {proto} dport {r.port}"
        if not r.nodes:  # Local, and no node has an endpoint
            drops.append(f"    {match} drop")
            continue
        dnat.append(f"    {match} dnat to {_target(r.nodes, r.node_port)}")
        if IPv4Network("0.0.0.0/0") in r.sources:
            continue
        elements = ", ".join(str(n) for n in r.sources)
        sets += [
            f"  set sources_{i} {{",
            "    type ipv4_addr; flags interval;",
            f"    elements = {{ {elements} }}",
            "  }",
        ]
        drops.append(f"    {match} ip saddr != @sources_{i} drop")
    lines = [
        f"# koral-ansible: LoadBalancer Services of cluster {cluster} (generated, do not edit)",
        *nft.drop_table_lines(table),
        f"table ip {table} {{",
        *sets,
        "  chain firewall {",
        "    type filter hook prerouting priority -150; policy accept;",
        *drops,
        "  }",
        "  chain lb_in {",
        "    type nat hook prerouting priority dstnat; policy accept;",
        *dnat,
        "  }",
        "  chain lb_local {",
        "    type nat hook output priority -100; policy accept;",
        *dnat,
        "  }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def render_delete(cluster: str) -> str:
    return "\n".join(nft.drop_table_lines(table_name(cluster))) + "\n"
