"""Security of a cluster created through the CLI on local nodes.

- ``--allowed-cidrs`` really restricts the public SSH ports (2222..) and the API (6443): from a
  network namespace this test creates (an "outside" host with two addresses), the allowed
  address connects and the other one does not;
- the cluster's private key and kubeconfig are 0600 (their directory 0700) and the key type is
  strong (ed25519, or RSA of at least 3072 bits);
- host keys are recorded on first contact and checked afterwards: once a node's host key
  changes, a converge is refused for that node; with the recorded key back, it passes again;
- nothing in the product turns host key checking off (no StrictHostKeyChecking=no);
- the user's network rules (``koral-play port-forward|firewall|lb add``) open a listener on a worker to
  the outside namespace through the public IP, only from the rules' sources, and close it on delete.

Traffic goes only to the cluster this test creates and to the test's own namespace.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from koral_ansible.cli import root
from koral_ansible.cli.common import run_cli
from koral_ansible.errors import OperationError
from koral_ansible.operations.context import Env, OperationFrame
from koral_ansible.operations.create import converge
from koral_ansible.providers.local.podman import podman_env
from tests.integration.outside_netns import Outside, outside_netns

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("require_root_podman")]

REPO = Path(__file__).resolve().parents[2]
CLUSTER = "sectest"


@pytest.fixture(scope="module")
def outside() -> Iterator[Outside]:
    with outside_netns("ks") as ns:
        yield ns


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, outside: Outside) -> Iterator[Env]:
    """A 1+1 cluster created through the CLI, reachable from outside only from ``outside.allowed``."""
    home = tmp_path_factory.mktemp("koral-sec-home")
    old = os.environ.get("KORAL_HOME")
    os.environ["KORAL_HOME"] = str(home)
    from scripts.offline_bundle import main as record_bundle  # the bundle setup.sh records

    try:
        record_bundle()
        code = run_cli(
            root, ["-q", "create", CLUSTER, "--size", "1", "--allowed-cidrs", f"{outside.allowed}/32"]
        )
        assert code == 0, "create failed"
        yield Env.open(str(home), quiet=True)
    finally:
        run_cli(root, ["-q", "delete", CLUSTER, "--yes"])
        if old is None:
            os.environ.pop("KORAL_HOME", None)
        else:
            os.environ["KORAL_HOME"] = old


def _public_ip(env: Env) -> str:
    return str(env.store.get_cluster(CLUSTER).endpoint["public_ip"])


def _ssh(env: Env, port: int, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "ssh", "-i", str(env.paths.ssh_key(CLUSTER)), "-p", str(port),
            "-o", f"UserKnownHostsFile={env.paths.known_hosts(CLUSTER)}",
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
            f"root@{_public_ip(env)}", command,
        ],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_allowed_cidrs_restrict_ssh_and_api(cluster: Env, outside: Outside) -> None:
    pub = _public_ip(cluster)
    ports = [n.ssh_port for n in cluster.store.nodes(CLUSTER)]
    assert ports == [2222, 2223]
    for port in [*ports, 6443]:
        assert outside.connect(outside.allowed, pub, port) == "OPEN", f"allowed source refused on {port}"
        assert outside.connect(outside.denied, pub, port).startswith("FAILED"), f"denied source got {port}"
    # The allowed source really reaches sshd and the API server, not only a TCP port.
    assert _ssh(cluster, 2222, "true").returncode == 0


def _play(*args: str) -> int:
    return run_cli(root, ["-q", *args])


def test_port_forward_and_firewall_rules_reach_a_node(cluster: Env, outside: Outside) -> None:
    """koral-play port-forward/firewall add on the running cluster: the outside namespace reaches a
    listener on the worker through the public IP, only from the rules' sources; delete closes it.
    The listener is on a NodePort, which koral's node firewall opens to the allowed CIDRs."""
    pub, worker = _public_ip(cluster), f"{CLUSTER}-node-1"
    listen = "systemd-run --unit=koral-rule-test python3 -m http.server 30080 --bind 0.0.0.0"
    assert _ssh(cluster, 2223, f"systemctl stop koral-rule-test 2>/dev/null; {listen}").returncode == 0
    # systemd-run returns before python3 listens (seconds on a loaded machine): wait for the socket.
    deadline = time.monotonic() + 60
    while _ssh(cluster, 2223, "ss -Hltn 'sport = :30080' | grep -q .").returncode != 0:
        assert time.monotonic() < deadline, "the test listener on 30080 never came up"
        time.sleep(0.5)
    try:
        assert outside.connect(outside.allowed, pub, 18080).startswith("FAILED")  # nothing yet
        assert _play("port-forward", "add", CLUSTER, "--public-port", "18080", "--private-port", "30080",
                     "--node", worker, "--cidr", f"{outside.allowed}/32") == 0  # fmt: skip
        assert outside.connect(outside.allowed, pub, 18080) == "OPEN"
        assert outside.connect(outside.denied, pub, 18080).startswith("FAILED")
        assert _play("port-forward", "delete", CLUSTER, "pf-1") == 0
        assert outside.connect(outside.allowed, pub, 18080).startswith("FAILED")
        # A forward admitting other sources, and a firewall rule on its port admitting ours: the
        # rules add up as CloudStack's do; deleting the firewall rule closes the port again.
        assert _play("port-forward", "add", CLUSTER, "--public-port", "18080", "--private-port", "30080",
                     "--node", worker, "--cidr", "192.0.2.0/24") == 0  # fmt: skip
        assert outside.connect(outside.allowed, pub, 18080).startswith("FAILED")
        assert _play("firewall", "add", CLUSTER, "--port", "18080", "--cidr", f"{outside.allowed}/32") == 0
        assert outside.connect(outside.allowed, pub, 18080) == "OPEN"
        # koral's own rules are untouched: SSH still admits only the allowed source.
        assert outside.connect(outside.denied, pub, 2222).startswith("FAILED")
        assert outside.connect(outside.allowed, pub, 2222) == "OPEN"
        assert _play("firewall", "delete", CLUSTER, "fw-1") == 0
        assert outside.connect(outside.allowed, pub, 18080).startswith("FAILED")
        assert _play("port-forward", "delete", CLUSTER, "pf-1") == 0
        # An LB rule over the workers (numgen round robin), from the allowed source only.
        assert _play("lb", "add", CLUSTER, "web", "--public-port", "18090", "--private-port", "30080",
                     "--cidr", f"{outside.allowed}/32") == 0  # fmt: skip
        assert outside.connect(outside.allowed, pub, 18090) == "OPEN"
        assert outside.connect(outside.denied, pub, 18090).startswith("FAILED")
        assert _play("lb", "delete", CLUSTER, "web") == 0
        assert outside.connect(outside.allowed, pub, 18090).startswith("FAILED")
        assert cluster.store.network_rules(CLUSTER) == []
    finally:
        _ssh(cluster, 2223, "systemctl stop koral-rule-test")
        for kind, name in (("firewall", "fw-1"), ("port-forward", "pf-1"), ("lb", "web")):
            run_cli(root, ["-q", kind, "delete", CLUSTER, name])


def test_keys_and_kubeconfig_are_private_and_strong(cluster: Env) -> None:
    key = cluster.paths.ssh_key(CLUSTER)
    kubeconfig = cluster.paths.kubeconfig(CLUSTER)
    for path in (key, kubeconfig):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, f"{path} is not 0600"
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    info = subprocess.run(
        ["ssh-keygen", "-l", "-f", str(key)], capture_output=True, text=True, check=True
    ).stdout
    bits, kind = int(info.split()[0]), info.strip().rsplit("(", 1)[1].rstrip(")")
    assert kind == "ED25519" or (kind == "RSA" and bits >= 3072), info
    # Host keys were recorded on first contact, one entry per node's public SSH port.
    known = cluster.paths.known_hosts(CLUSTER)
    pub = _public_ip(cluster)
    for port in (2222, 2223):  # entries may be hashed: ask ssh-keygen
        found = subprocess.run(["ssh-keygen", "-F", f"[{pub}]:{port}", "-f", str(known)], capture_output=True)
        assert found.returncode == 0, f"no recorded host key for [{pub}]:{port}"


def _converge(env: Env) -> tuple[bool, str]:
    """Run create.yml over the cluster again: (passed, the failure line naming host and task)."""
    record = env.store.get_cluster(CLUSTER)
    try:
        with OperationFrame(env, CLUSTER, "converge", busy=None, failed=None) as frame:
            converge(env, frame, record, "create.yml")
    except OperationError as exc:
        return False, exc.message
    return True, ""


def test_changed_host_key_is_refused(cluster: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    worker = f"{CLUSTER}-node-1"
    # A fresh SSH control path directory: an SSH master connection still open from an earlier run
    # (ControlPersist) was authenticated with the old key and would not check the new one.
    # (A short directory: control socket paths must stay under 108 characters.)
    control_dir = tempfile.mkdtemp(prefix="kcp-")
    monkeypatch.setenv("ANSIBLE_SSH_CONTROL_PATH_DIR", control_dir)
    # Give the worker a new host key (keeping the recorded one aside to put it back).
    swap = (
        "mkdir -p /root/hostkeys && mv /etc/ssh/ssh_host_* /root/hostkeys/ && ssh-keygen -q -A "
        "&& systemctl restart ssh"
    )
    assert _ssh(cluster, 2223, swap).returncode == 0
    try:
        proc = _ssh(cluster, 2223, "true")
        assert proc.returncode != 0 and "HOST IDENTIFICATION HAS CHANGED" in proc.stderr
        ok, failures = _converge(cluster)
        assert not ok
        assert worker in failures, failures
        assert re.search(r"host key|Host key|HOST IDENTIFICATION|UNREACHABLE|unreachable", failures), failures
    finally:
        restore = (
            "podman exec {c} sh -c 'rm -f /etc/ssh/ssh_host_* && mv /root/hostkeys/* /etc/ssh/ "
            "&& systemctl restart ssh'"
        )
        container = next(n.provider_id for n in cluster.store.nodes(CLUSTER) if n.name == worker)
        subprocess.run(
            ["sh", "-c", restore.format(c=container)],
            env={**os.environ, **podman_env(cluster.paths)},
            check=True,
            capture_output=True,
            timeout=60,
        )
    assert _ssh(cluster, 2223, "true").returncode == 0
    ok, failures = _converge(cluster)
    assert ok, failures
    shutil.rmtree(control_dir, ignore_errors=True)


def test_no_blanket_host_key_checking_off() -> None:
    """Only tests may turn host key checking off; the product never does."""
    offenders = []
    for base in ("koral_ansible", "roles", "playbooks", "plugins", "inventories"):
        for path in (REPO / base).rglob("*"):
            if path.is_file() and path.suffix in (".py", ".yml", ".yaml", ".cfg", ".j2", ".ini"):
                text = path.read_text(errors="replace")
                if re.search(
                    r"StrictHostKeyChecking[= ]+no|host_key_checking\s*[=:]\s*(False|false|no)", text
                ):
                    offenders.append(str(path.relative_to(REPO)))
    cfg = (REPO / "ansible.cfg").read_text()
    assert re.search(r"host_key_checking\s*=\s*True", cfg)
    assert offenders == []
