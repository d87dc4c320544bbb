"""End to end through LocalProvider: a 1 control + 2 worker cluster of podman nodes on this host.

Traffic goes only to the cluster this test creates (its public IP is the bridge gateway on this
host) and to a network namespace the test creates to play an outside client.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from koral_ansible.paths import Paths
from koral_ansible.providers.base import ProviderContext
from koral_ansible.providers.local import LocalProvider, lb, nft
from koral_ansible.providers.local.podman import LABEL_CLUSTER, LABEL_HOME, Podman, home_id
from koral_ansible.spec import validate_spec
from koral_ansible.state import StateStore
from tests.integration.outside_netns import Outside, outside_netns

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("require_root_podman")]

API_SERVER = (
    "import socket\n"
    "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind(('0.0.0.0', 6443)); s.listen()\n"
    "while True:\n"
    "    c, _ = s.accept(); c.sendall(b'koral-api\\n'); c.close()\n"
)
NODE_CLIENT = (
    "import socket, sys\n"
    "s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)\n"
    "print(s.recv(64).decode(errors='replace').strip())\n"
)


@pytest.fixture
def client() -> Iterator[Outside]:
    with outside_netns("kt") as ns:
        yield ns


def _ssh(key: Path, known_hosts: Path, host: str, port: int, command: str) -> str:
    proc = subprocess.run(
        [
            "ssh",
            "-i",
            str(key),
            "-p",
            str(port),
            "-o",
            f"UserKnownHostsFile={known_hosts}",
            "-o",
            "StrictHostKeyChecking=accept-new",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "ConnectTimeout=5",
            "-o",
            "LogLevel=ERROR",
            f"root@{host}",
            command,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, f"ssh -p {port} {command!r}: {proc.stderr.strip()}"
    return proc.stdout.strip()


def _read(host: str, port: int) -> str:
    import socket

    try:
        with socket.create_connection((host, port), timeout=2) as s:
            s.settimeout(2)
            return s.recv(64).decode(errors="replace").strip()
    except OSError as exc:
        return f"FAILED {type(exc).__name__}"


def test_local_cluster_lifecycle(koral_home: Paths, tmp_path: Path, client: Outside) -> None:
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    known_hosts = tmp_path / "known_hosts"
    name = f"it{secrets.token_hex(3)}"
    spec = validate_spec({"name": name, "size": 2, "allowed_cidrs": [f"{client.allowed}/32"]})
    store = StateStore(koral_home)
    store.add_cluster(spec)
    log: list[str] = []
    ctx = ProviderContext(
        store=store,
        paths=koral_home,
        cluster=name,
        ssh_public_key=key.with_suffix(".pub").read_text(),
        report=log.append,
    )
    provider = LocalProvider(ctx)
    podman = Podman(koral_home)
    try:
        t0 = time.monotonic()
        endpoint = provider.provision(spec)
        provisioned = time.monotonic() - t0
        pub = endpoint.public_ip
        assert endpoint.control_plane_endpoint == f"{pub}:6443"
        recs = store.nodes(name)
        assert [(n.name, n.idx, n.ssh_port) for n in recs] == [
            (f"{name}-control-1", 0, 2222),
            (f"{name}-node-1", 1, 2223),
            (f"{name}-node-2", 2, 2224),
        ]
        assert all(n.ssh_host == pub and n.provider_id and provider.node_running(n) for n in recs)

        # SSH through every forwarded port lands on the right node
        for n in recs:
            assert _ssh(key, known_hosts, pub, n.ssh_port, "hostname") == n.name

        # API load balancer: a listener on the control node's 6443 answers through public_ip:6443
        _ssh(key, known_hosts, pub, 2222, f"systemd-run --unit koral-test-api python3 -c {_q(API_SERVER)}")
        deadline = time.monotonic() + 20
        while (answer := _read(pub, 6443)) != "koral-api" and time.monotonic() < deadline:
            time.sleep(0.3)
        assert answer == "koral-api"

        # Nodes reach the API through the public IP (kubeadm's controlPlaneEndpoint), and any
        # node's SSH port, their own included (hairpin), even though allowed_cidrs excludes them
        probe = f"python3 -c {_q(NODE_CLIENT)} {pub}"
        assert _ssh(key, known_hosts, pub, 2223, f"{probe} 6443") == "koral-api"
        assert _ssh(key, known_hosts, pub, 2223, f"{probe} 2223").startswith("SSH-")
        assert _ssh(key, known_hosts, pub, 2222, f"{probe} 2224").startswith("SSH-")

        # Firewall: only allowed_cidrs (here the client's .10) reach 2222.. and 6443 from outside
        assert client.read(client.allowed, pub, 2223).startswith("SSH-")
        assert client.read(client.allowed, pub, 6443) == "koral-api"
        assert client.read(client.denied, pub, 2223).startswith("FAILED")
        assert client.read(client.denied, pub, 6443).startswith("FAILED")

        # Re-running provision reuses everything (idempotent) and changes no node
        ids = {n.name: n.provider_id for n in recs}
        provider.provision(spec)
        assert {n.name: n.provider_id for n in store.nodes(name)} == ids

        # Scale out and in: the new worker gets the next port, a removed node loses its forward
        (added,) = provider.add_workers(spec, 1)
        assert (added.name, added.ssh_port) == (f"{name}-node-3", 2225)
        assert _ssh(key, known_hosts, pub, 2225, "hostname") == added.name
        provider.remove_node(spec, recs[1])
        assert [n.name for n in store.nodes(name)] == [recs[0].name, recs[2].name, added.name]
        assert _read(pub, 2223).startswith("FAILED")
        assert not provider.node_running(recs[1])

        # Stop (workers first) and start (control plane first) keep the same nodes
        provider.stop(spec)
        assert not any(provider.node_running(n) for n in store.nodes(name))
        provider.start(spec)
        assert _ssh(key, known_hosts, pub, 2224, "hostname") == recs[2].name
        assert {n.state for n in store.nodes(name)} == {"Running"}
    finally:
        t1 = time.monotonic()
        provider.destroy(spec)
        destroyed = time.monotonic() - t1
    print(f"\nprovision 1+2: {provisioned:.1f}s, destroy: {destroyed:.1f}s")

    wanted = {LABEL_CLUSTER: name, LABEL_HOME: home_id(koral_home)}
    assert podman.containers_by_labels(wanted) == []
    assert podman.networks_by_labels(wanted) == []
    assert not nft.table_exists(name)
    assert lb.find_processes(koral_home.local_dir(name) / lb.CONFIG_NAME) == []
    assert not koral_home.local_dir(name).exists()
    assert store.resources(name) == []
    assert store.nodes(name) == []
    provider.destroy(spec)  # twice is fine


def _q(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


PROVISION_SCRIPT = """
import sys
from pathlib import Path
from koral_ansible.paths import Paths
from koral_ansible.providers.base import ProviderContext
from koral_ansible.providers.local import LocalProvider
from koral_ansible.state import StateStore
from tests.integration.outside_netns import Outside, outside_netns
home, name, pubkey = sys.argv[1:4]
paths = Paths.resolve(home=home)
store = StateStore(paths)
spec = store.get_cluster(name).spec
ctx = ProviderContext(store=store, paths=paths, cluster=name, ssh_public_key=Path(pubkey).read_text())
LocalProvider(ctx).provision(spec)
"""


def test_provision_resumes_after_sigkill_and_destroy_sweeps_by_label(
    koral_home: Paths, tmp_path: Path
) -> None:
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    name = f"ik{secrets.token_hex(3)}"
    spec = validate_spec({"name": name, "size": 2})
    store = StateStore(koral_home)
    store.add_cluster(spec)
    ctx = ProviderContext(
        store=store, paths=koral_home, cluster=name, ssh_public_key=key.with_suffix(".pub").read_text()
    )
    provider = LocalProvider(ctx)
    podman = Podman(koral_home)
    wanted = {LABEL_CLUSTER: name, LABEL_HOME: home_id(koral_home)}
    try:
        # A provision killed with SIGKILL as soon as its first node container exists...
        proc = subprocess.Popen(
            [sys.executable, "-c", PROVISION_SCRIPT, str(koral_home.home), name, str(key.with_suffix(".pub"))]
        )
        deadline = time.monotonic() + 120
        while not podman.containers_by_labels(wanted) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        proc.kill()
        proc.wait()
        # ...is finished by the next run, reusing what exists (no duplicate nodes)
        provider.provision(spec)
        assert len(podman.containers_by_labels(wanted)) == 3
        assert [n.ssh_port for n in store.nodes(name)] == [2222, 2223, 2224]
        assert all(provider.node_running(n) for n in store.nodes(name))

        # Destroy still removes everything when the state lost its rows (label sweep)
        for res in store.resources(name):
            store.remove_resource(name, res.kind, res.rid)
        for node in store.nodes(name):
            store.remove_node(name, node.name)
    finally:
        provider.destroy(spec)
    assert podman.containers_by_labels(wanted) == []
    assert podman.networks_by_labels(wanted) == []
    assert not nft.table_exists(name)
    assert lb.find_processes(koral_home.local_dir(name) / lb.CONFIG_NAME) == []
    assert not koral_home.local_dir(name).exists()
