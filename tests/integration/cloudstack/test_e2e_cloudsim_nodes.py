"""End to end on the test cloud with real machines: ``koral-play create --provider cloudstack``.

The test cloud's VMs are local podman nodes (:class:`tests.cloudsim.podman_backend.PodmanBackend`):
the cloud's port forwards are nft DNAT rules on a public IP that exists on this host, its load
balancer rule is haproxy, its firewall rules filter before DNAT. Through the CLI: create 1+2 (the
create playbook runs over the forwarded ports 2222..), kubeconfig through the LB on 6443, plain
``ansible-playbook -i <cluster>.koral.yml playbooks/create.yml`` (no wrapper) changes nothing,
scale to 3 workers, stop/start, delete -> nothing left in the cloud or on the host.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

import pytest
import yaml

from koral_ansible.bundle import verify_bundle
from koral_ansible.cgroup import cgroup_version
from koral_ansible.cli import root
from koral_ansible.cli.common import run_cli
from koral_ansible.operations.context import Env
from koral_ansible.resources import ansible_root
from koral_ansible.state import ClusterState
from tests.bundle_fixtures import make_double_bundle
from tests.cloudsim import CloudSim
from tests.cloudsim.podman_backend import PodmanBackend
from tests.versions import DEFAULT

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("require_root_podman")]

NAME = "cse2e"
VERSION = DEFAULT


@dataclass
class Cloud:
    sim: CloudSim
    backend: PodmanBackend
    home: Path
    bundle: Path
    kubectl: Path  # the bundle's kubectl (the test double speaks the double API server's subset)


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    bundle_root = tmp_path_factory.mktemp("bundle")
    made = make_double_bundle(bundle_root, VERSION, iso=True)
    assert made.iso is not None
    home = tmp_path_factory.mktemp("koral-home")
    with (
        pytest.MonkeyPatch.context() as mp,
        PodmanBackend(tmp_path_factory.mktemp("cloudsim-nodes"), report=print) as backend,
        CloudSim(backend.sim_config(job_latency=0.05), backend=backend) as sim,
    ):
        mp.setenv("KORAL_HOME", str(home))
        for key, value in sim.client_env().items():
            mp.setenv(key, value)
        mp.setenv("KORAL_CLOUDSTACK_TEMPLATE", "koral-node-debian12")
        try:
            yield Cloud(sim, backend, home, Path(made.iso), Path(made.directory) / "k8s" / "kubectl")
        finally:
            run_cli(root, ["delete", NAME, "--yes"])


def _ssh(env: Env, host: str, port: int, command: str) -> str:
    proc = subprocess.run(
        ["ssh", "-i", str(env.paths.ssh_key(NAME)), "-p", str(port),
         "-o", f"UserKnownHostsFile={env.paths.known_hosts(NAME)}", "-o", "StrictHostKeyChecking=yes",
         "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", f"root@{host}", command],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def _kubectl_nodes(env: Env, cloud: Cloud) -> list[str]:
    """``kubectl get nodes`` on this host with the recorded kubeconfig: through the LB on 6443."""
    proc = subprocess.run(
        [str(cloud.kubectl), "--kubeconfig", str(env.paths.kubeconfig(NAME)), "get", "nodes", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return sorted(item["metadata"]["name"] for item in json.loads(proc.stdout)["items"])


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> float:
    t0 = time.monotonic()
    code = run_cli(root, args)
    _, err = capsys.readouterr()
    assert code == 0, f"koral-play {' '.join(args)}: {err}"
    seconds = time.monotonic() - t0
    with capsys.disabled():
        print(f"\n  koral-play {args[0]}: {seconds:.1f}s", file=sys.stderr)
    return seconds


def _plain_ansible(tmp: Path, cloud: Cloud) -> tuple[int, dict[str, int], str]:
    """``ansible-playbook -i <cluster>.koral.yml playbooks/create.yml`` as a user (or AWX) runs it."""
    inventory = tmp / f"{NAME}.koral.yml"
    inventory.write_text(yaml.safe_dump({"plugin": "koral", "cluster": NAME}))
    bindir = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLOUDSTACK_", "ANSIBLE_"))}
    env.update(PATH=f"{bindir}{os.pathsep}{env.get('PATH', '')}", KORAL_HOME=str(cloud.home))
    proc = subprocess.run(
        [f"{bindir}/ansible-playbook", "-i", str(inventory), "playbooks/create.yml"],
        cwd=ansible_root(),
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    changed = {m[0]: int(m[1]) for m in re.findall(r"^(\S+)\s+:\s+ok=\d+\s+changed=(\d+)", proc.stdout, re.M)}
    return proc.returncode, changed, proc.stdout[-3000:] + proc.stderr[-2000:]


def test_cluster_on_cloudsim_nodes(cloud: Cloud, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # create 1+2 through the CLI; the playbook runs over public_ip:2222.. (DNAT to the VMs' sshd)
    version = verify_bundle(cloud.bundle, deep=False).kubernetes_version
    # The test cloud's VMs share this host's cgroups: on a cgroup v1 host a cloud cluster needs the
    # explicit opt-in (it is never implied for the cloud provider; the preflight role refuses it).
    opt_in = ["--allow-cgroup-v1"] if cgroup_version() == 1 else []
    _cli(
        ["create", NAME, "--provider", "cloudstack", "--zone", "zone1", "--compute-offering",
         "Medium Instance", "--size", "2", "--bundle", str(cloud.bundle), "--kubernetes-version", version,
         *opt_in],
        capsys,
    )  # fmt: skip
    env = Env.open(str(cloud.home), quiet=True)
    record = env.store.get_cluster(NAME)
    assert record.state is ClusterState.RUNNING
    names = [n.name for n in record.nodes]
    assert names == [f"{NAME}-control-1", f"{NAME}-node-1", f"{NAME}-node-2"]
    public = record.endpoint["public_ip"]
    assert cloud.backend.public is not None and IPv4Address(public) in cloud.backend.public
    for node in record.nodes:
        assert (node.ssh_host, node.ssh_port) == (public, 2222 + node.idx)
        assert _ssh(env, public, node.ssh_port, "hostname") == node.name  # hostname from user data
    assert [v["name"] for v in cloud.sim.api.cloud.vms.values()] == names

    # the API through the cloud's LB rule (haproxy on the public IP), with the recorded kubeconfig
    with socket.create_connection((public, 6443), timeout=5):
        pass
    kubeconfig = yaml.safe_load(env.paths.kubeconfig(NAME).read_text())
    assert kubeconfig["clusters"][0]["cluster"]["server"] == f"https://{public}:6443"
    assert _kubectl_nodes(env, cloud) == sorted(names)

    # plain Ansible, no wrapper: the inventory plugin gives everything the playbooks need
    t0 = time.monotonic()
    rc, changed, tail = _plain_ansible(tmp_path, cloud)
    with capsys.disabled():
        print(
            f"\n  plain ansible-playbook create.yml: {time.monotonic() - t0:.1f}s {changed}", file=sys.stderr
        )
    assert rc == 0, tail
    assert sorted(changed) == sorted(names) and set(changed.values()) == {0}, tail

    # scale +1 worker: a new VM, its port forward 2225 and firewall rule
    _cli(["scale", NAME, "--size", "3"], capsys)
    record = env.store.get_cluster(NAME)
    worker = record.nodes[-1]
    assert (worker.name, worker.ssh_port) == (f"{NAME}-node-3", 2225)
    assert _ssh(env, public, 2225, "hostname") == worker.name
    assert len(_kubectl_nodes(env, cloud)) == 4

    # stop / start: the cloud's VMs stop and start, the nodes come back on the same addresses
    _cli(["stop", NAME], capsys)
    assert {v["state"] for v in cloud.sim.api.cloud.vms.values()} == {"Stopped"}
    _cli(["start", NAME], capsys)
    assert {v["state"] for v in cloud.sim.api.cloud.vms.values()} == {"Running"}
    for node in env.store.get_cluster(NAME).nodes:
        assert _ssh(env, public, node.ssh_port, "hostname") == node.name
    assert len(_kubectl_nodes(env, cloud)) == 4

    # delete: nothing left in the cloud, nothing left on the host
    _cli(["delete", NAME, "--yes"], capsys)
    assert env.store.find_cluster(NAME) is None
    assert set(cloud.sim.counts().values()) == {0}, cloud.sim.counts()
    assert cloud.backend.leftovers() == {"containers": [], "networks": [], "nft_tables": [], "haproxy": []}
