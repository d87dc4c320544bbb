"""Two clusters created at once on local nodes, in one koral home: no cross-talk.

Two `koral-play create` processes (1+1 each, different names) run concurrently. Both succeed,
each with its own podman network and subnet, public IP (the bridge gateway), nft table and
haproxy (config, process, backends); each Kubernetes cluster sees only its own nodes. Deleting
one leaves the other's resources in place and its API working through its load balancer.
The Kubernetes binaries are the test doubles (tests/doubles).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from koral_ansible.cli import root
from koral_ansible.cli.common import run_cli
from koral_ansible.operations.context import Env
from koral_ansible.providers.local import lb, nft
from koral_ansible.providers.local.network import inspect_network, network_name
from koral_ansible.providers.local.nodes import container_name
from koral_ansible.providers.local.podman import Podman, podman_env
from koral_ansible.state import ClusterState
from tests.bundle_fixtures import make_double_bundle
from tests.integration.cli_home import cli_home
from tests.versions import DEFAULT

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("require_root_podman")]

NAMES = ("lcca", "lccb")
VERSION = DEFAULT
CREATE_ARGS = ("--size", "1", "--allowed-cidrs", "10.0.0.0/8", "--bundle")
KUBECTL = "kubectl --kubeconfig /etc/kubernetes/admin.conf"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with cli_home(tmp_path_factory.mktemp("koral-home"), *NAMES) as h:
        yield h


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root_dir = tmp_path_factory.mktemp("bundle")
    result = make_double_bundle(root_dir, VERSION, iso=True)
    assert result.iso is not None
    return Path(result.iso)


def has_ip(text: str, ip: str) -> bool:
    return re.search(rf"(?<![0-9.]){re.escape(ip)}(?![0-9])", text) is not None


def node_exec(env: Env, node: str, command: str) -> str:
    proc = subprocess.run(
        ["podman", "exec", container_name(node), "sh", "-c", command],
        capture_output=True,
        text=True,
        env={**os.environ, **podman_env(env.paths)},
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, f"{node}: {command}: {proc.stderr}"
    return proc.stdout.strip()


def cluster_nodes(env: Env, name: str) -> dict[str, bool]:
    """Node name -> Ready, as the cluster's own API (through its load balancer) reports them."""
    items = json.loads(node_exec(env, f"{name}-control-1", f"{KUBECTL} get nodes -o json"))["items"]
    return {
        i["metadata"]["name"]: any(
            c["type"] == "Ready" and c["status"] == "True" for c in i["status"]["conditions"]
        )
        for i in items
    }


def test_two_creates_at_once_then_delete_one(home: Path, bundle: Path) -> None:
    koral_play = Path(sys.executable).parent / "koral-play"
    started = time.monotonic()
    procs = [
        subprocess.Popen(
            [str(koral_play), "--quiet", "create", name, *CREATE_ARGS, str(bundle)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=os.environ.copy(),
        )
        for name in NAMES
    ]
    results = [(p.wait(timeout=1200), p.stderr.read() if p.stderr else "") for p in procs]
    print(f"two creates 1+1 at once: {time.monotonic() - started:.0f}s")
    assert [code for code, _ in results] == [0, 0], results

    env = Env.open(str(home), quiet=True)
    podman = Podman(env.paths)
    records = {name: env.store.get_cluster(name) for name in NAMES}
    assert all(r.state is ClusterState.RUNNING for r in records.values())
    ips = {name: {n.name: str(n.private_ip) for n in r.nodes} for name, r in records.items()}
    a, b = NAMES

    # Distinct networks, subnets and public IPs.
    nets = {name: inspect_network(podman, network_name(name)) for name in NAMES}
    assert all(nets.values()), nets
    subnets = {name: {s["subnet"] for s in (nets[name] or {}).get("subnets", [])} for name in NAMES}
    assert subnets[a] and subnets[b] and not subnets[a] & subnets[b], subnets
    public = {name: r.endpoint["public_ip"] for name, r in records.items()}
    assert public[a] != public[b], public
    assert not set(ips[a].values()) & set(ips[b].values()), ips

    # Each nft table and haproxy names only its own cluster's addresses.
    for name, other in ((a, b), (b, a)):
        table = subprocess.run(
            ["nft", "list", "table", "ip", nft.table_name(name)], capture_output=True, text=True, check=True
        ).stdout
        assert has_ip(table, public[name]) and all(has_ip(table, ip) for ip in ips[name].values()), table
        assert not any(has_ip(table, ip) for ip in [public[other], *ips[other].values()]), table
        config = env.paths.local_dir(name) / lb.CONFIG_NAME
        text = config.read_text()
        assert has_ip(text, public[name]) and has_ip(text, ips[name][f"{name}-control-1"]), text
        assert not any(has_ip(text, ip) for ip in [public[other], *ips[other].values()]), text
        assert lb.running(env.paths.local_dir(name)) and len(lb.find_processes(config)) == 1

    # Each cluster's API sees only its own nodes, all Ready.
    for name in NAMES:
        assert cluster_nodes(env, name) == {n: True for n in ips[name]}, name

    # Deleting one leaves the other working.
    assert run_cli(root, ["delete", a, "--yes"]) == 0
    assert env.store.find_cluster(a) is None
    assert not nft.table_exists(a) and nft.table_exists(b)
    assert inspect_network(podman, network_name(a)) is None and inspect_network(podman, network_name(b))
    assert not lb.find_processes(env.paths.local_dir(a) / lb.CONFIG_NAME)
    assert lb.running(env.paths.local_dir(b))
    assert env.store.get_cluster(b).state is ClusterState.RUNNING
    assert cluster_nodes(env, b) == {n: True for n in ips[b]}
