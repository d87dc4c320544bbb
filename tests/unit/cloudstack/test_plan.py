"""The pure planning layer of the cloudstack provider."""

from __future__ import annotations

import base64

from koral_ansible.providers.cloudstack import plan


def test_layout_control_first_and_ports() -> None:
    slots = plan.layout("k", 3, 2)
    assert [(s.name, s.role, s.idx, s.ssh_port) for s in slots] == [
        ("k-control-1", "control", 0, 2222),
        ("k-control-2", "control", 1, 2223),
        ("k-control-3", "control", 2, 2224),
        ("k-node-1", "worker", 3, 2225),
        ("k-node-2", "worker", 4, 2226),
    ]


def test_more_workers_continue_numbers_and_indexes() -> None:
    slots = [s for s in plan.layout("k", 1, 3) if s.name != "k-node-2"]
    new = plan.more_workers("k", slots, 2)
    assert [(s.name, s.idx) for s in new] == [("k-node-4", 4), ("k-node-5", 5)]


def test_firewall_plan_ranges() -> None:
    slots = [s for s in plan.layout("k", 1, 3) if s.idx != 2]
    fw = plan.firewall_plan(slots, ["198.51.100.0/24", "192.0.2.0/24"])
    assert [(r.start, r.end, r.cidrs) for r in fw] == [
        (6443, 6443, ("192.0.2.0/24", "198.51.100.0/24")),
        (2222, 2223, ("192.0.2.0/24", "198.51.100.0/24")),
        (2225, 2225, ("192.0.2.0/24", "198.51.100.0/24")),
    ]
    assert [r.label for r in plan.firewall_plan(slots, ["0.0.0.0/0"], api=False)] == ["2222-2223", "2225"]


def test_diff_firewall_keeps_matching_and_deletes_only_owned() -> None:
    wanted = plan.firewall_plan(plan.layout("k", 1, 1), ["0.0.0.0/0"])
    existing = [
        {"id": "a", "protocol": "tcp", "startport": 6443, "endport": 6443, "cidrlist": "0.0.0.0/0"},
        {"id": "b", "protocol": "tcp", "startport": 2222, "endport": 2224, "cidrlist": "0.0.0.0/0"},
        {"id": "c", "protocol": "tcp", "startport": 80, "endport": 80, "cidrlist": "0.0.0.0/0"},
    ]
    d = plan.diff_firewall(wanted, existing, owned={"a", "b"})
    assert d.keep == ("a",)
    assert d.create == (plan.PortRange(2222, 2223, ("0.0.0.0/0",)),)
    assert d.delete == ("b",)  # "c" is someone else's rule: never touched


def test_diff_forwards() -> None:
    slots = plan.layout("k", 1, 2)
    vm_ids = {"k-control-1": "v0", "k-node-1": "v1", "k-node-2": "v2"}
    existing = [
        {"id": "p0", "publicport": "2222", "privateport": "22", "virtualmachineid": "v0"},
        {"id": "p1", "publicport": "2223", "privateport": "22", "virtualmachineid": "gone"},
    ]
    d = plan.diff_forwards(plan.forward_plan(slots), existing, vm_ids, owned={"p0", "p1"})
    assert d.keep == ("p0",)
    assert [f.public_port for f in d.create] == [2223, 2224]  # type: ignore[attr-defined]
    assert d.delete == ("p1",)


def test_destroy_order_is_rollback_order() -> None:
    recorded = ["network", "public_ip", "vm", "firewall_rule", "port_forward", "lb_rule", "ssh_keypair"]
    assert plan.destroy_order(recorded) == [
        "lb_rule",
        "port_forward",
        "firewall_rule",
        "vm",
        "public_ip",
        "ssh_keypair",
        "network",
    ]
    assert plan.destroy_order(["vm", "other"]) == ["vm", "other"]


def test_userdata_and_limits() -> None:
    text = base64.b64decode(plan.userdata("k-node-1", "ssh-ed25519 AAAA key\n")).decode()
    assert (
        text.startswith("#cloud-config\n")
        and "hostname: k-node-1" in text
        and "  - ssh-ed25519 AAAA key\n" in text
    )
    assert plan.check_size(10, 10) is None
    assert plan.check_size(11, 10) == "must be an integer from 1 to 10 (cloud.kubernetes.cluster.max.size)"
    assert plan.offering_ok(2, 2048) and not plan.offering_ok(1, 4096) and not plan.offering_ok(4, 1024)
    assert plan.lb_name("k") == "k-api-lb"
