"""The LoadBalancer Services a cluster asks for, read from API objects (pure).

Which Services are served follows the cloud-provider service controller
(kubernetes/cloud-provider ``controllers/service/controller.go``: ``wantsLoadBalancer``):
``spec.type == LoadBalancer`` and no ``spec.loadBalancerClass`` (a class means another
controller owns it). Only TCP and UDP ports are forwarded, as cloud-provider-kind does
(kubernetes-sigs/cloud-provider-kind ``pkg/loadbalancer/server.go``: SCTP is skipped). Source
ranges are ``spec.loadBalancerSourceRanges``, else the annotation
``service.beta.kubernetes.io/load-balancer-source-ranges``, else everyone
(kubernetes/cloud-provider ``service/helpers/helper.go``: ``GetLoadBalancerSourceRanges``).
``externalTrafficPolicy: Local`` with its ``healthCheckNodePort`` (pkg/api/service/util.go
``NeedsHealthCheck``) sends only to the nodes whose health check answers
(:mod:`koral_ansible.loadbalancer.health`); Local without a health check port (no API server
leaves it out) is served as Cluster.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Network
from typing import Any

SOURCE_RANGES_ANNOTATION = "service.beta.kubernetes.io/load-balancer-source-ranges"
PROTOCOLS = ("TCP", "UDP")
EVERYONE = IPv4Network("0.0.0.0/0")


@dataclass(frozen=True)
class LbPort:
    """One forwarded port: ``protocol`` ``port`` on the public address -> ``node_port`` on the nodes."""

    protocol: str
    port: int
    node_port: int


@dataclass(frozen=True)
class LbService:
    """A Service koral serves, with what the rules need."""

    namespace: str
    name: str
    created: str
    ports: tuple[LbPort, ...]
    source_ranges: tuple[IPv4Network, ...]
    health_check_node_port: int = 0  # externalTrafficPolicy Local: its health check port
    requested_ip: str = ""  # spec.loadBalancerIP (deprecated upstream, still honoured by clouds)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def local(self) -> bool:
        """Whether only nodes with an endpoint of the Service take its traffic."""
        return self.health_check_node_port > 0


def wants_load_balancer(obj: Mapping[str, Any]) -> bool:
    spec = obj.get("spec") or {}
    return spec.get("type") == "LoadBalancer" and not spec.get("loadBalancerClass")


def source_ranges(obj: Mapping[str, Any]) -> tuple[IPv4Network, ...]:
    """The IPv4 source ranges of a Service (everyone when none is given; IPv6 ranges are ignored,
    local clusters are IPv4 only). Invalid entries are ignored: the API server validates the field
    (pkg/apis/core/validation ``ValidateService``), the annotation is free text."""
    spec = obj.get("spec") or {}
    raw: Iterable[str] = spec.get("loadBalancerSourceRanges") or []
    if not raw:
        annotation = ((obj.get("metadata") or {}).get("annotations") or {}).get(SOURCE_RANGES_ANNOTATION, "")
        raw = [r for r in annotation.replace(" ", "").split(",") if r]
    nets: list[IPv4Network] = []
    for r in raw:
        try:
            net = ipaddress.ip_network(str(r).strip(), strict=False)
        except ValueError:
            continue
        if isinstance(net, IPv4Network):
            nets.append(net)
    return tuple(ipaddress.collapse_addresses(nets)) if nets else (EVERYONE,)


def lb_service(obj: Mapping[str, Any]) -> LbService | None:
    """The Service as koral serves it, or None when it is not a LoadBalancer Service of ours."""
    if not wants_load_balancer(obj):
        return None
    md, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    ports = tuple(
        LbPort(str(p.get("protocol") or "TCP"), int(p["port"]), int(p["nodePort"]))
        for p in spec.get("ports") or []
        if (p.get("protocol") or "TCP") in PROTOCOLS and p.get("port") and p.get("nodePort")
    )
    local = spec.get("externalTrafficPolicy") == "Local"
    return LbService(
        namespace=str(md.get("namespace") or "default"),
        name=str(md.get("name") or ""),
        created=str(md.get("creationTimestamp") or ""),
        ports=ports,
        source_ranges=source_ranges(obj),
        health_check_node_port=int(spec.get("healthCheckNodePort") or 0) if local else 0,
        requested_ip=str(spec.get("loadBalancerIP") or ""),
    )


EXCLUDE_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"
TO_BE_DELETED_TAINT = "ToBeDeletedByClusterAutoscaler"


def _included(node: Mapping[str, Any]) -> bool:
    """kubernetes/cloud-provider controllers/service/controller.go: ``nodeIncludedPredicate`` (the
    exclude label, unless its value parses as false: kubeadm labels control-plane nodes with "") and
    ``nodeUnTaintedPredicate`` (not being removed by cluster-autoscaler)."""
    labels = (node.get("metadata") or {}).get("labels") or {}
    if EXCLUDE_LABEL in labels and str(labels[EXCLUDE_LABEL]).lower() not in ("false", "f", "0"):
        return False
    taints = (node.get("spec") or {}).get("taints") or []
    return not any(t.get("key") == TO_BE_DELETED_TAINT for t in taints)


def backends(nodes: Iterable[Mapping[str, Any]]) -> list[ipaddress.IPv4Address]:
    """InternalIPs of the nodes a load balancer sends to (sorted)."""
    out: set[ipaddress.IPv4Address] = set()
    for node in nodes:
        if not _included(node):
            continue
        for addr in (node.get("status") or {}).get("addresses") or []:
            if addr.get("type") == "InternalIP":
                try:
                    ip = ipaddress.ip_address(str(addr.get("address")))
                except ValueError:
                    continue
                if isinstance(ip, ipaddress.IPv4Address):
                    out.add(ip)
    return sorted(out)
