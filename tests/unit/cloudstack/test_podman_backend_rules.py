"""Pure parts of the test cloud's podman backend: CloudStack firewall semantics as nft guards,
the hostname cloud-init would set, the nft table it loads."""

from __future__ import annotations

import os
import shutil
import subprocess
from ipaddress import IPv4Address, IPv4Network

import pytest

from koral_ansible.providers.local import nft
from tests.cloudsim.backend import FirewallRule, LoadBalancer, MachineSpec, NetworkView, PortForward
from tests.cloudsim.podman_backend import guards_for, hostname_of

PUB = "10.213.4.10"
GUEST = [IPv4Network("10.213.3.0/24")]


def _view(*rules: FirewallRule) -> NetworkView:
    pfs = tuple(PortForward(PUB, 2222 + i, f"10.213.3.{2 + i}", 22, "tcp") for i in range(3))
    lbs = (LoadBalancer("c-api-lb", PUB, 6443, 6443, "roundrobin", "tcp", ("10.213.3.2",)),)
    return NetworkView(pfs, lbs, rules)


def test_published_ports_without_rules_admit_only_the_guest_network() -> None:
    (guard,) = guards_for(_view(), GUEST)
    assert guard == nft.Guard(IPv4Address(PUB), (2222, 2223, 2224, 6443), tuple(GUEST))


def test_firewall_rules_open_their_ports_to_their_sources_union_per_port() -> None:
    rules = (
        FirewallRule(PUB, "tcp", 2222, 2224, ("192.0.2.0/24",)),
        FirewallRule(PUB, "tcp", 6443, 6443, ("192.0.2.0/24",)),
        FirewallRule(PUB, "tcp", 2224, 2224, ("198.51.100.7/32",)),
        FirewallRule("10.213.4.11", "tcp", 1, 65535, ("0.0.0.0/0",)),  # another IP: no effect here
    )
    guards = {g.ports: g.allowed for g in guards_for(_view(*rules), GUEST)}
    assert guards == {
        (2222, 2223, 6443): (IPv4Network("10.213.3.0/24"), IPv4Network("192.0.2.0/24")),
        (2224,): (
            IPv4Network("10.213.3.0/24"),
            IPv4Network("192.0.2.0/24"),
            IPv4Network("198.51.100.7/32"),
        ),
    }


def test_hostname_from_cloud_config_user_data() -> None:
    spec = MachineSpec("id", "vm-1", "10.0.0.2", "n", "10.0.0.0/24", "10.0.0.1", 2, 2048, 8, "")
    assert hostname_of(spec) == "vm-1"
    with_data = MachineSpec(
        "id",
        "vm-1",
        "10.0.0.2",
        "n",
        "10.0.0.0/24",
        "10.0.0.1",
        2,
        2048,
        8,
        "#cloud-config\nhostname: c-node-1\n",
    )
    assert hostname_of(with_data) == "c-node-1"


def _table() -> str:
    dnats = [nft.Dnat(IPv4Address(PUB), 2222, IPv4Address("10.213.3.2"))]
    guards = guards_for(_view(FirewallRule(PUB, "tcp", 2222, 2222, ("192.0.2.0/24",))), GUEST)
    return nft.render_table("koral_cloudsim_unit", "unit", dnats, guards, GUEST)


def test_render_table_shape() -> None:
    lines = [ln.strip() for ln in _table().splitlines()]
    assert "ip daddr 10.213.4.10 tcp dport 2222 dnat to 10.213.3.2:22" in lines
    assert "ip daddr 10.213.4.10 tcp dport { 2222 } ip saddr != @allowed_sources drop" in lines
    assert "ip daddr 10.213.4.10 tcp dport { 2223, 2224, 6443 } ip saddr != @allowed_sources_1 drop" in lines


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("nft") is None, reason="needs root and nft")
def test_render_table_is_accepted_by_nft() -> None:
    proc = subprocess.run(
        ["nft", "-c", "-f", "-"], input=_table(), capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
