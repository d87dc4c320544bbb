"""playbooks/boilerplate.yml rejects bad inventories before any node is contacted.

Runs ansible-playbook on in-memory inventories whose hosts do not exist: the boilerplate plays
never connect, so a good inventory passes and a bad one fails with its message.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.versions import DEFAULT

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

GOOD: dict[str, Any] = {
    "all": {
        "vars": {
            "koral_cluster_name": "t",
            "koral_kubernetes_version": DEFAULT,
            "koral_pod_cidr": "10.244.0.0/16",
            "koral_service_cidr": "10.96.0.0/12",
            "koral_cni": "weave",
            "koral_control_plane_endpoint": "192.0.2.10:6443",
        },
        "children": {
            "k8s_cluster": {"children": {"kube_control_plane": {}, "kube_node": {}}},
            "kube_control_plane": {"hosts": {"cp1": {"koral_node_ip": "10.0.0.11"}}},
            "etcd": {"hosts": {"cp1": {}}},
            "kube_node": {"hosts": {"w1": {"koral_node_ip": "10.0.0.21"}}},
        },
    }
}


def _run(inventory: dict[str, Any], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    inv = tmp_path / "inventory.yml"
    inv.write_text(yaml.safe_dump(inventory))
    env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}", "ANSIBLE_NOCOLOR": "1"}
    env.pop("ANSIBLE_CONFIG", None)
    return subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(inv), "playbooks/boilerplate.yml"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def _bad(change: str) -> dict[str, Any]:
    inv = copy.deepcopy(GOOD)
    groups = inv["all"]["children"]
    if change == "even control plane":
        groups["kube_control_plane"]["hosts"]["cp2"] = {"koral_node_ip": "10.0.0.12"}
        groups["etcd"]["hosts"]["cp2"] = {}
    elif change == "no etcd group":
        del groups["etcd"]
    elif change == "etcd outside control plane":
        groups["etcd"]["hosts"] = {"w1": {}}
    elif change == "missing cluster var":
        del inv["all"]["vars"]["koral_pod_cidr"]
    elif change == "missing node ip":
        groups["kube_node"]["hosts"]["w1"] = {}
    elif change == "unknown cni":
        inv["all"]["vars"]["koral_cni"] = "flannel"
    return inv


def test_good_inventory_passes(tmp_path: Path) -> None:
    proc = _run(GOOD, tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("even control plane", "odd number of hosts"),
        ("no etcd group", "needs the groups kube_control_plane"),
        ("etcd outside control plane", "etcd runs stacked on the control plane"),
        ("missing cluster var", "koral_pod_cidr must be set"),
        ("missing node ip", "Host w1 needs koral_node_ip"),
        ("unknown cni", "koral_cni must be weave or calico"),
    ],
)
def test_bad_inventory_fails_with_message(change: str, message: str, tmp_path: Path) -> None:
    proc = _run(_bad(change), tmp_path)
    assert proc.returncode != 0
    assert message in " ".join(proc.stdout.split()), proc.stdout[-3000:]
