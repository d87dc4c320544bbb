"""A user's network rule on the cluster's public IP, as recorded in the state store."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

FIREWALL = "firewall"
PORT_FORWARD = "port-forward"
LB = "lb"
KINDS = (FIREWALL, PORT_FORWARD, LB)

# Protocols each kind accepts (CloudStack: CreateFirewallRuleCmd tcp/udp/icmp,
# CreatePortForwardingRuleCmd tcp/udp, CreateLoadBalancerRuleCmd tcp/udp).
PROTOCOLS: dict[str, tuple[str, ...]] = {
    FIREWALL: ("tcp", "udp", "icmp"),
    PORT_FORWARD: ("tcp", "udp"),
    LB: ("tcp", "udp"),
}
# CloudStack's load balancer algorithms (LoadBalancingRulesManagerImpl.validateLoadBalancer).
ALGORITHMS = ("roundrobin", "leastconn", "source")
DEFAULT_CIDRS = ("0.0.0.0/0",)
# Name prefix of generated rule names (firewall fw-1, port forward pf-1); LB rules are named by the user.
NAME_PREFIX = {FIREWALL: "fw", PORT_FORWARD: "pf"}


@dataclass(frozen=True)
class Rule:
    """One rule. Ports are inclusive ranges; icmp firewall rules have none (0, 0).

    ``nodes``: the port forward's target (one node) or the LB's members (empty: every worker,
    so members follow scale). ``private_*``: where a port forward or LB sends the traffic.
    """

    kind: str
    name: str
    protocol: str
    start_port: int
    end_port: int
    cidrs: tuple[str, ...] = DEFAULT_CIDRS
    private_start: int = 0
    private_end: int = 0
    nodes: tuple[str, ...] = ()
    algorithm: str = ""
    created: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ports(self) -> str:
        return _label(self.start_port, self.end_port)

    @property
    def private_ports(self) -> str:
        return _label(self.private_start, self.private_end)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["cidrs"] = list(self.cidrs)
        data["nodes"] = list(self.nodes)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Rule:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["cidrs"] = tuple(known.get("cidrs") or DEFAULT_CIDRS)
        known["nodes"] = tuple(known.get("nodes") or ())
        return cls(**known)

    def row(self) -> dict[str, Any]:
        """One line of ``list`` / ``show``."""
        return {
            "name": self.name,
            "kind": self.kind,
            "protocol": self.protocol,
            "public_port": self.ports,
            "private_port": self.private_ports if self.kind != FIREWALL else "",
            "nodes": ",".join(self.nodes) if self.nodes else ("workers" if self.kind == LB else ""),
            "algorithm": self.algorithm,
            "cidrs": ",".join(self.cidrs),
        }


def _label(start: int, end: int) -> str:
    if not start:
        return ""
    return str(start) if start == end else f"{start}-{end}"
