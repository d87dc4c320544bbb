"""Inventory generation: kubespray groups, Koral's port convention, no secrets."""

from __future__ import annotations

from pathlib import Path

import yaml

from koral_ansible.inventory import build_inventory, ssh_connection_vars, write_inventory
from koral_ansible.paths import Paths
from koral_ansible.providers.base import Endpoint, node_name
from koral_ansible.spec import validate_spec
from koral_ansible.state import NodeRecord


def test_groups_and_hostvars(tmp_path: Path) -> None:
    spec = validate_spec(
        {
            "name": "demo",
            "control_nodes": 3,
            "size": 2,
            "registry": {"url": "http://r:5000", "username": "u", "password": "inv-secret-9"},
        }
    )
    ep = Endpoint(public_ip="10.213.1.1", control_plane_endpoint="10.213.1.1:6443")
    nodes = [
        NodeRecord(
            node_name("demo", "control" if i < 3 else "worker", (i if i < 3 else i - 3) + 1),
            "control" if i < 3 else "worker",
            i,
            f"10.213.1.{11 + i}",
            "10.213.1.1",
            2222 + i,
        )
        for i in range(5)
    ]
    inv = build_inventory(
        spec, list(reversed(nodes)), ep, ssh_connection_vars(Paths.resolve(tmp_path), "demo")
    )
    ch = inv["all"]["children"]
    assert list(ch["kube_control_plane"]["hosts"]) == ["demo-control-1", "demo-control-2", "demo-control-3"]
    assert list(ch["etcd"]["hosts"]) == list(ch["kube_control_plane"]["hosts"])
    assert list(ch["kube_node"]["hosts"]) == ["demo-node-1", "demo-node-2"]
    assert set(ch["k8s_cluster"]["children"]) == {"kube_control_plane", "kube_node"}
    h = ch["kube_node"]["hosts"]["demo-node-2"]
    assert (h["ansible_host"], h["ansible_port"], h["koral_node_ip"]) == ("10.213.1.1", 2226, "10.213.1.15")
    v = inv["all"]["vars"]
    assert v["koral_control_plane_endpoint"] == "10.213.1.1:6443"
    assert v["koral_registry_url"] == "http://r:5000"
    assert "StrictHostKeyChecking=accept-new" in v["ansible_ssh_common_args"]
    path = write_inventory(inv, tmp_path / "inv" / "hosts.yml")
    text = path.read_text()
    assert "inv-secret-9" not in text
    assert yaml.safe_load(text) == inv
    assert oct(path.stat().st_mode & 0o777) == "0o600"
