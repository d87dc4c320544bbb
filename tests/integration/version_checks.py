"""What a cluster created on a given Kubernetes version must show, checked from this machine.

Shared by the modules that create on the supported minors no other module creates on
(tests/versions.py ``VERSIONS_TO_CHECK``): test_loadbalancer_local.py (its cluster is created on the
first of them) and test_versions_local.py (the rest, if any). Checked with the real kubectl
(tests/kubectl_bin.py) through the cluster's kubeconfig, and on the nodes over SSH; the Kubernetes
binaries are the test doubles.
"""

from __future__ import annotations

import json
import os
import subprocess

import yaml

from koral_ansible.operations.context import Env
from koral_ansible.providers.local.podman import podman_env
from koral_ansible.versions import kubeadm_api_version
from tests.kubectl_bin import fetch_kubectl


def ssh(env: Env, name: str, port: int, command: str) -> str:
    host = env.store.get_cluster(name).endpoint["public_ip"]
    proc = subprocess.run(
        [
            "ssh", "-i", str(env.paths.ssh_key(name)), "-p", str(port),
            "-o", f"UserKnownHostsFile={env.paths.known_hosts(name)}", "-o", "StrictHostKeyChecking=yes",
            "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", f"root@{host}", command,
        ],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def kubectl_json(env: Env, name: str, version: str, *args: str) -> dict[str, object]:
    proc = subprocess.run(
        [str(fetch_kubectl(version)), "--kubeconfig", str(env.paths.kubeconfig(name)), *args, "-o", "json"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out: dict[str, object] = json.loads(proc.stdout)
    return out


def check_nodes_ready(env: Env, name: str, version: str) -> None:
    """Every node Ready on that kubelet version (the real kubectl, through the public endpoint)."""
    record = env.store.get_cluster(name)
    nodes = kubectl_json(env, name, version, "get", "nodes")["items"]
    assert isinstance(nodes, list)
    assert sorted(n["metadata"]["name"] for n in nodes) == sorted(n.name for n in record.nodes)
    for node in nodes:
        ready = [c["status"] for c in node["status"]["conditions"] if c["type"] == "Ready"]
        assert ready == ["True"], node["status"]["conditions"]
        assert node["status"]["nodeInfo"]["kubeletVersion"] == f"v{version}"


def check_kubeadm_config(env: Env, name: str, version: str) -> None:
    """kubeadm init ran on that version with that version's config API (kubeadm-config)."""
    cm = kubectl_json(env, name, version, "-n", "kube-system", "get", "configmap", "kubeadm-config")
    assert isinstance(cm["data"], dict)
    cluster_config = yaml.safe_load(cm["data"]["ClusterConfiguration"])
    assert cluster_config["kind"] == "ClusterConfiguration"
    assert cluster_config["apiVersion"] == kubeadm_api_version(version)
    assert cluster_config["kubernetesVersion"] == f"v{version}"


def check_containerd(env: Env, name: str, containerd: str) -> None:
    """The bundle's containerd 2.x on every node, its config.toml version 3 as containerd reads it."""
    assert containerd.startswith("2."), containerd
    for node in env.store.nodes(name):
        assert f" {containerd}" in ssh(env, name, node.ssh_port, "containerd --version")
        dump = ssh(env, name, node.ssh_port, "containerd config dump")
        assert dump.startswith("version = 3\n") or "\nversion = 3\n" in dump


def check_nothing_left(env: Env, name: str) -> None:
    """After ``delete``: no record, no container, no nftables table, no cluster directory."""
    assert env.store.find_cluster(name) is None
    penv = {**os.environ, **podman_env(env.paths)}
    ps = subprocess.run(
        ["podman", "ps", "-a", "--filter", f"label=koral.cluster={name}", "-q"],
        capture_output=True, text=True, env=penv, check=True,
    )  # fmt: skip
    assert ps.stdout.strip() == ""
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=True).stdout
    assert f"koral_{name}" not in tables
    assert not env.paths.cluster_dir(name).exists()
