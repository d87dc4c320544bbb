"""Desired host rules for LoadBalancer Services on local clusters (pure: koral_ansible.loadbalancer)."""

from __future__ import annotations

import subprocess
from ipaddress import IPv4Address, IPv4Network
from typing import Any

import pytest

from koral_ansible.loadbalancer import rules
from koral_ansible.loadbalancer.services import EVERYONE, backends, lb_service, source_ranges

PUB = IPv4Address("10.213.0.1")
NODES = [IPv4Address("10.213.0.12"), IPv4Address("10.213.0.11")]


def svc(
    name: str, ports: list[dict[str, Any]], created: str = "2026-12-01T00:00:00Z", **spec: Any
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "default", "creationTimestamp": created},
        "spec": {"type": "LoadBalancer", "ports": ports, **spec},
    }


def tcp(port: int, node_port: int, protocol: str = "TCP") -> dict[str, Any]:
    return {"port": port, "nodePort": node_port, "protocol": protocol}


def test_only_load_balancer_services_without_a_class_are_served() -> None:
    assert lb_service({"spec": {"type": "NodePort", "ports": [tcp(80, 30080)]}}) is None
    assert lb_service(svc("a", [tcp(80, 30080)], loadBalancerClass="example.com/other")) is None
    got = lb_service(svc("a", [tcp(80, 30080), tcp(53, 30053, "UDP"), tcp(9, 30009, "SCTP")]))
    assert got is not None and [(p.protocol, p.port, p.node_port) for p in got.ports] == [
        ("TCP", 80, 30080),
        ("UDP", 53, 30053),
    ]


def test_source_ranges_field_then_annotation_then_everyone() -> None:
    assert source_ranges(svc("a", [])) == (EVERYONE,)
    ann = svc("a", [])
    ann["metadata"]["annotations"] = {
        "service.beta.kubernetes.io/load-balancer-source-ranges": "10.1.0.0/16, 10.2.0.0/16"
    }
    assert source_ranges(ann) == (IPv4Network("10.1.0.0/16"), IPv4Network("10.2.0.0/16"))
    both = svc("a", [], loadBalancerSourceRanges=["192.168.1.0/24", "192.168.0.0/24"])
    both["metadata"]["annotations"] = ann["metadata"]["annotations"]
    assert source_ranges(both) == (IPv4Network("192.168.0.0/23"),)


def _plan(*objs: dict[str, Any]) -> rules.Plan:
    wanted = [s for s in (lb_service(o) for o in objs) if s is not None]
    return rules.plan(PUB, NODES, wanted, {6443, 2222, 2223})


def test_plan_older_service_keeps_a_port_and_koral_ports_are_refused() -> None:
    p = _plan(
        svc("new", [tcp(80, 30001)], created="2026-12-01T02:00:00Z"),
        svc("old", [tcp(80, 30002)], created="2026-12-01T01:00:00Z"),
        svc("api", [tcp(6443, 30003)]),
        svc("udp80", [tcp(80, 30004, "UDP")], created="2026-12-01T03:00:00Z"),
        svc("noport", [{"port": 81, "protocol": "TCP"}]),
    )
    assert [s.key for s in p.served] == ["default/old", "default/udp80"]
    assert p.refused == {
        "default/new": "port 80/TCP is taken by default/old",
        "default/api": "port 6443/TCP is taken by koral",
        "default/noport": "no TCP/UDP port with a node port",
    }
    assert p.nodes == (IPv4Address("10.213.0.11"), IPv4Address("10.213.0.12"))
    assert p.ingress(p.served[0]) == [
        {"ip": "10.213.0.1", "ipMode": "Proxy", "ports": [{"port": 80, "protocol": "TCP"}]}
    ]


def test_render_spreads_over_nodes_and_drops_other_sources() -> None:
    p = _plan(
        svc("web", [tcp(80, 30080)], loadBalancerSourceRanges=["10.9.0.0/24"]),
        svc("dns", [tcp(53, 30053, "UDP")]),
    )
    text = rules.render("demo-1", p)
    assert "table ip koral_lb_demo_1 {" in text
    spread = "dnat to numgen inc mod 2 map { 0 : 10.213.0.11, 1 : 10.213.0.12 } : 30080"
    assert f"ip daddr 10.213.0.1 tcp dport 80 {spread}" in text
    assert "ip daddr 10.213.0.1 udp dport 53 dnat to numgen inc mod 2 map" in text
    assert "elements = { 10.9.0.0/24 }" in text
    assert "ip daddr 10.213.0.1 tcp dport 80 ip saddr != @sources_0 drop" in text
    assert "udp dport 53 ip saddr" not in text  # no range: everyone
    assert rules.render("demo-1", p) == text  # stable: a second pass loads nothing new


def test_empty_plan_keeps_an_empty_table_and_names_do_not_collide() -> None:
    text = rules.render("demo", _plan())
    assert "dnat" not in text and "drop" not in text
    assert rules.table_name("demo") != "koral_demo"
    assert rules.render_delete("demo") == "table ip koral_lb_demo {}\ndelete table ip koral_lb_demo\n"


@pytest.mark.skipif(subprocess.run(["which", "nft"], capture_output=True).returncode != 0, reason="no nft")
def test_rendered_script_is_valid_nft() -> None:
    p = _plan(
        svc("web", [tcp(80, 30080)], loadBalancerSourceRanges=["10.9.0.0/24"]),
        svc("dns", [tcp(53, 30053, "UDP")]),
    )
    proc = subprocess.run(
        ["nft", "-c", "-f", "-"], input=rules.render("lbunitcheck", p), capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr


def _node(
    ip: str, labels: dict[str, str] | None = None, taints: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    return {
        "metadata": {"labels": labels or {}},
        "spec": {"taints": taints or []},
        "status": {
            "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": "n"}]
        },
    }


def test_backends_leave_out_excluded_and_autoscaler_deleted_nodes() -> None:
    exclude = "node.kubernetes.io/exclude-from-external-load-balancers"
    got = backends(
        [
            _node("10.213.0.13"),
            _node("10.213.0.11", {exclude: ""}),  # kubeadm's control plane
            _node("10.213.0.14", {exclude: "false"}),
            _node("10.213.0.15", taints=[{"key": "ToBeDeletedByClusterAutoscaler", "effect": "NoSchedule"}]),
            _node("10.213.0.12"),
        ]
    )
    assert got == [IPv4Address("10.213.0.12"), IPv4Address("10.213.0.13"), IPv4Address("10.213.0.14")]


def _local(name: str, port: int, node_port: int, hc: int, **spec: Any) -> dict[str, Any]:
    return svc(name, [tcp(port, node_port)], externalTrafficPolicy="Local", healthCheckNodePort=hc, **spec)


def test_local_policy_sends_only_to_nodes_whose_health_check_answers() -> None:
    a, b = sorted(NODES)
    objs = [_local("edge", 443, 30443, 31000), svc("web", [tcp(80, 30080)])]
    wanted = [s for s in (lb_service(o) for o in objs) if s is not None]
    assert rules.health_targets(NODES, wanted) == [(a, 31000), (b, 31000)]  # only the Local one's port
    p = rules.plan(PUB, NODES, wanted, set(), {(a, 31000): False, (b, 31000): True})
    assert p.backends == {"default/edge": (b,), "default/web": (a, b)}
    text = rules.render("demo", p)
    assert f"tcp dport 443 dnat to {b}:30443" in text  # one node: no numgen map
    assert f"tcp dport 80 dnat to numgen inc mod 2 map {{ 0 : {a}, 1 : {b} }} : 30080" in text
    # No node answers: the Service keeps its address, its port drops new connections.
    none = rules.plan(PUB, NODES, wanted, set(), {})
    assert none.backends["default/edge"] == () and [s.key for s in none.served] == [
        "default/edge",
        "default/web",
    ]
    text = rules.render("demo", none)
    assert f"ip daddr {PUB} tcp dport 443 drop" in text and "dport 443 dnat" not in text
    # Local without a health check port (no API server writes that) is served as Cluster.
    bare = lb_service(svc("bare", [tcp(8443, 30843)], externalTrafficPolicy="Local"))
    assert bare is not None and not bare.local


@pytest.mark.skipif(subprocess.run(["which", "nft"], capture_output=True).returncode != 0, reason="no nft")
def test_rendered_script_with_a_local_service_without_backends_is_valid_nft() -> None:
    wanted = [
        s
        for s in (
            lb_service(o)
            for o in [_local("edge", 443, 30443, 31000, loadBalancerSourceRanges=["10.9.0.0/24"])]
        )
        if s
    ]
    p = rules.plan(PUB, NODES, wanted, set(), {})
    proc = subprocess.run(
        ["nft", "-c", "-f", "-"], input=rules.render("lbunitcheck", p), capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr


def test_load_balancer_ip_must_be_the_cluster_s_address() -> None:
    p = _plan(
        svc("mine", [tcp(80, 30080)], loadBalancerIP=str(PUB)),
        svc("other", [tcp(81, 30081)], loadBalancerIP="192.0.2.7"),
    )
    assert [s.key for s in p.served] == ["default/mine"]
    assert p.refused == {
        "default/other": f"spec.loadBalancerIP 192.0.2.7 is not this cluster's address (it has {PUB} only)"
    }
