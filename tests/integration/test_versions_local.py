"""Create on each supported minor that no other module creates on (the default: test_cluster_local.py;
UPGRADE_FROM: test_lifecycle_local.py, test_lifecycle_ha_upgrade.py and test_faults_local.py create on it),
on local nodes through the CLI: 1 control + 1 worker on the pinned patch, then delete.

Checked with the real kubectl (tests/kubectl_bin.py) from this machine through the cluster's
kubeconfig: every node Ready on that kubelet version, kubeadm-config's ClusterConfiguration on that
version and kubeadm config API; on the node, the bundle's containerd 2.x with a version 3 config.toml
that ``containerd config dump`` accepts. The Kubernetes binaries are the test doubles.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from koral_ansible.bundle import verify_bundle
from koral_ansible.cli import root
from koral_ansible.cli.common import run_cli
from koral_ansible.operations.context import Env
from koral_ansible.providers.local.podman import podman_env
from koral_ansible.state import ClusterState
from koral_ansible.versions import Version, kubeadm_api_version
from tests.bundle_fixtures import make_double_bundle
from tests.integration.cli_home import cli_home
from tests.kubectl_bin import fetch_kubectl
from tests.versions import OTHER_SUPPORTED, UPGRADE_FROM

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("require_root_podman")]


VERSIONS = tuple(v for v in OTHER_SUPPORTED if v != UPGRADE_FROM)


def _name(version: str) -> str:
    v = Version.parse(version)
    return f"ver{v.major}{v.minor}"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with cli_home(tmp_path_factory.mktemp("koral-home"), *(_name(v) for v in VERSIONS)) as h:
        yield h


def _ssh(env: Env, name: str, port: int, command: str) -> str:
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


def _kubectl(env: Env, name: str, version: str, *args: str) -> dict[str, object]:
    proc = subprocess.run(
        [str(fetch_kubectl(version)), "--kubeconfig", str(env.paths.kubeconfig(name)), *args, "-o", "json"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out: dict[str, object] = json.loads(proc.stdout)
    return out


@pytest.mark.parametrize("version", VERSIONS)
def test_create_on_version(
    version: str, home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = _name(version)
    bundle = Path(make_double_bundle(tmp_path / "bundle", version, iso=False).directory)
    manifest = verify_bundle(bundle, deep=False)
    assert manifest.kubernetes_version == version
    args = [
        "create", name, "--size", "1", "--bundle", str(bundle), "--kubernetes-version", version,
        "--allowed-cidrs", "10.0.0.0/8,127.0.0.0/8",
    ]  # fmt: skip
    started = time.monotonic()
    code = run_cli(root, args)
    elapsed = time.monotonic() - started
    _, err = capsys.readouterr()
    assert code == 0, err
    print(f"create {name} on {version}: {elapsed:.0f} s")
    env = Env.open(str(home), quiet=True)
    record = env.store.get_cluster(name)
    assert record.state is ClusterState.RUNNING
    assert [n.name for n in record.nodes] == [f"{name}-control-1", f"{name}-node-1"]

    # Every node Ready on that kubelet version (the real kubectl, through the public endpoint).
    nodes = _kubectl(env, name, version, "get", "nodes")["items"]
    assert isinstance(nodes, list)
    assert sorted(n["metadata"]["name"] for n in nodes) == [n.name for n in record.nodes]
    for node in nodes:
        ready = [c["status"] for c in node["status"]["conditions"] if c["type"] == "Ready"]
        assert ready == ["True"], node["status"]["conditions"]
        assert node["status"]["nodeInfo"]["kubeletVersion"] == f"v{version}"

    # kubeadm init ran on that version with that version's config API.
    cm = _kubectl(env, name, version, "-n", "kube-system", "get", "configmap", "kubeadm-config")
    assert isinstance(cm["data"], dict)
    cluster_config = yaml.safe_load(cm["data"]["ClusterConfiguration"])
    assert cluster_config["kind"] == "ClusterConfiguration"
    assert cluster_config["apiVersion"] == kubeadm_api_version(version)
    assert cluster_config["kubernetesVersion"] == f"v{version}"

    # The bundle's containerd 2.x, its config.toml version 3 as containerd reads it.
    containerd = manifest.runtime_versions["containerd"]
    assert containerd.startswith("2.")
    for port in (2222, 2223):
        assert f" {containerd}" in _ssh(env, name, port, "containerd --version")
        dump = _ssh(env, name, port, "containerd config dump")
        assert dump.startswith("version = 3\n") or "\nversion = 3\n" in dump

    # Delete leaves nothing behind.
    assert run_cli(root, ["delete", name, "--yes"]) == 0
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
