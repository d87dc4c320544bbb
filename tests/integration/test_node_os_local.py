"""Local nodes on Debian 13 (trixie), through the CLI: create 1+1 with --node-os debian-13,
the nodes' /etc/os-release says trixie, the Node objects are there, show records it, delete.

The Kubernetes binaries are the test doubles (as in test_cluster_local.py); the node image is
built from trixie with debootstrap on first use and cached separately from bookworm's.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from koral_ansible.bundle import verify_bundle
from koral_ansible.cli import root
from koral_ansible.cli.common import run_cli
from koral_ansible.operations.context import Env
from koral_ansible.state import ClusterState
from tests.bundle_fixtures import make_double_bundle
from tests.integration.cli_home import cli_home

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("require_root_podman")]

NAME = "os13"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with cli_home(tmp_path_factory.mktemp("koral-home"), NAME) as h:
        yield h


def ssh(env: Env, port: int, command: str) -> str:
    host = env.store.get_cluster(NAME).endpoint["public_ip"]
    proc = subprocess.run(
        [
            "ssh", "-i", str(env.paths.ssh_key(NAME)), "-p", str(port),
            "-o", f"UserKnownHostsFile={env.paths.known_hosts(NAME)}", "-o", "StrictHostKeyChecking=yes",
            "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", f"root@{host}", command,
        ],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_debian_13_nodes(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bundle = Path(make_double_bundle(tmp_path / "bundle", iso=False).directory)
    args = [
        "create", NAME, "--size", "1", "--node-os", "debian-13", "--bundle", str(bundle),
        "--kubernetes-version", verify_bundle(bundle, deep=False).kubernetes_version,
        "--allowed-cidrs", "10.0.0.0/8,127.0.0.0/8",
    ]  # fmt: skip
    code = run_cli(root, args)
    _, err = capsys.readouterr()
    assert code == 0, err
    env = Env.open(str(home), quiet=True)
    record = env.store.get_cluster(NAME)
    assert record.state is ClusterState.RUNNING
    assert [n.name for n in record.nodes] == [f"{NAME}-control-1", f"{NAME}-node-1"]

    for i in range(len(record.nodes)):
        lines = ssh(env, 2222 + i, "cat /etc/os-release").splitlines()
        release = dict(line.split("=", 1) for line in lines if "=" in line)
        assert release["VERSION_CODENAME"] == "trixie" and release["VERSION_ID"] == '"13"', release
        assert "SUITE=trixie" in ssh(env, 2222 + i, "cat /etc/koral-node-release")
    nodes = json.loads(ssh(env, 2222, "kubectl --kubeconfig /etc/kubernetes/admin.conf get nodes -o json"))
    assert sorted(i["metadata"]["name"] for i in nodes["items"]) == [n.name for n in record.nodes]

    assert run_cli(root, ["show", NAME, "-o", "json"]) == 0
    out, _ = capsys.readouterr()
    assert json.loads(out)["node_os"] == "debian-13"

    assert run_cli(root, ["delete", NAME, "--yes"]) == 0
    assert env.store.find_cluster(NAME) is None
