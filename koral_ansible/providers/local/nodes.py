"""Node containers: privileged systemd containers of the node image, one per cluster node.

A node ``<cluster>-control-1`` runs as container ``koral-<cluster>-control-1`` with the node
name as hostname, a static IP on the cluster network, host directories bind-mounted at
``/var/lib/containerd`` (containerd's overlay snapshots cannot live on the container's own
overlay root) and ``/var/lib/kubelet`` (real filesystem stats for kubelet), and the cluster's
public key as root's ``authorized_keys`` (a read-only 0600 file).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

from koral_ansible.errors import OperationError
from koral_ansible.paths import Paths, private_dir, write_private
from koral_ansible.providers.local.podman import Podman, labels

BIND_DIRS = {"containerd": "/var/lib/containerd", "kubelet": "/var/lib/kubelet"}
STOP_TIMEOUT = 30
# containers/common libnetwork/netavark/ipam.go allocIPs (podman 4.3): a static IP already in the
# IPAM database is refused, even when it is allocated to the very container asking for it.
IPAM_HELD = re.compile(
    r"requested ip address (?P<ip>\S+) is already allocated to container ID (?P<id>[0-9a-f]+)"
)
RUN_TIMEOUT = 180.0


def container_name(node: str) -> str:
    return f"koral-{node}"


@dataclass(frozen=True)
class NodeSpec:
    """What one node container is made of."""

    cluster: str
    name: str
    ip: IPv4Address
    network: str
    image: str
    cpus: int
    memory_mib: int
    hostname: str = ""  # the node name when empty


def node_dir(paths: Paths, cluster: str, node: str) -> Path:
    return paths.local_dir(cluster) / "nodes" / node


def authorized_keys(paths: Paths, cluster: str, public_key: str) -> Path:
    """The cluster's authorized_keys file (0600 in a 0700 dir), rewritten only when it changes."""
    path = paths.local_dir(cluster) / "ssh" / "authorized_keys"
    text = public_key.strip() + "\n"
    if not path.is_file() or path.read_text() != text:
        write_private(path, text)
    return path


def run_args(node: NodeSpec, home: str, dirs: dict[str, Path], keys: Path, limits: bool) -> list[str]:
    """``podman run`` arguments for a node (pure)."""
    args = [
        "run",
        "--detach",
        "--name",
        container_name(node.name),
        "--hostname",
        node.hostname or node.name,
        *labels(node.cluster, home, node.name),
        "--network",
        node.network,
        "--ip",
        str(node.ip),
        "--privileged",
        "--systemd=always",
        "--stop-timeout",
        str(STOP_TIMEOUT),
        "--volume",
        f"{keys}:/root/.ssh/authorized_keys:ro",
    ]
    for key, target in BIND_DIRS.items():
        args += ["--volume", f"{dirs[key]}:{target}"]
    if limits:
        args += ["--cpus", str(node.cpus), "--memory", f"{node.memory_mib}m"]
    return [*args, node.image, "/sbin/init"]


def make_dirs(paths: Paths, cluster: str, node: str) -> dict[str, Path]:
    base = node_dir(paths, cluster, node)
    return {key: private_dir(base / key) for key in BIND_DIRS}


def remove_dirs(paths: Paths, cluster: str, node: str) -> None:
    shutil.rmtree(node_dir(paths, cluster, node), ignore_errors=True)


def create(podman: Podman, node: NodeSpec, home: str, dirs: dict[str, Path], keys: Path) -> tuple[str, str]:
    """Run the node container; return (container id, note). Falls back to no cpu/memory limits
    when the host's cgroups refuse them (the note says so)."""
    proc = podman.run(*run_args(node, home, dirs, keys, limits=True), check=False, timeout=RUN_TIMEOUT)
    if proc.returncode == 0:
        return proc.stdout.strip(), ""
    first_error = _tail(proc.stderr)
    podman.run("rm", "--force", "--time", "0", container_name(node.name), check=False)
    proc = podman.run(*run_args(node, home, dirs, keys, limits=False), check=False, timeout=RUN_TIMEOUT)
    if proc.returncode != 0:
        raise OperationError(f"cannot start node {node.name}: {first_error}")
    return proc.stdout.strip(), f"cpu/memory limits not applied (host refused them: {first_error})"


def ensure_running(podman: Podman, name: str) -> None:
    """Start an existing container if it is not running."""
    state = podman.container_state(container_name(name))
    if state == "running":
        return
    if state == "paused":
        podman.run("unpause", container_name(name))
        return
    proc = podman.run("start", container_name(name), check=False, timeout=RUN_TIMEOUT)
    if proc.returncode != 0:
        raise OperationError(start_error(name, proc.stderr, podman.container_id(container_name(name))))


def start_error(node: str, stderr: str, own_id: str | None) -> str:
    """The one-line error of a refused ``podman start``; names podman's IPAM leak when it is one."""
    tail = _tail(stderr)
    match = IPAM_HELD.search(stderr)
    if match and own_id and match.group("id") == own_id:
        return (
            f"cannot start node {node}: podman still holds its address {match.group('ip')} from a start "
            "that was interrupted (podman 4.3 commits the address before it records the network "
            "namespace, and nothing releases it but removing the network) — fix: koral-play delete "
            "the cluster and create it again"
        )
    return f"cannot start node {node}: {tail}"


def stop(podman: Podman, name: str) -> None:
    podman.run(
        "stop", "--time", str(STOP_TIMEOUT), container_name(name), check=False, timeout=STOP_TIMEOUT + 60
    )


def remove(podman: Podman, names: Sequence[str]) -> None:
    """Remove containers by container name (idempotent)."""
    if names:
        podman.run("rm", "--force", "--ignore", "--time", "5", *names, timeout=120)


def ssh_banner(host: str, port: int, timeout: float = 2.0) -> bool:
    """Whether ``host:port`` answers with an SSH identification line."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            data = b""
            while b"\n" not in data and len(data) < 256:
                chunk = sock.recv(256)
                if not chunk:
                    break
                data += chunk
            return data.startswith(b"SSH-")
    except OSError:
        return False


def wait_ssh(
    targets: Sequence[tuple[str, str, int]],
    timeout: float,
    report: Callable[[str], None] = lambda _m: None,
) -> None:
    """Wait until every (node, host, port) answers SSH; OperationError naming the laggards."""
    pending = list(targets)
    deadline = time.monotonic() + timeout
    t0 = time.monotonic()
    while pending:
        pending = [t for t in pending if not ssh_banner(t[1], t[2], timeout=1.0)]
        if not pending:
            break
        if time.monotonic() > deadline:
            names = ", ".join(f"{n} ({h}:{p})" for n, h, p in pending)
            raise OperationError(f"SSH did not answer within {timeout:.0f}s on {names}")
        time.sleep(0.2)
    with contextlib.suppress(Exception):
        report(f"local: SSH answers on {len(targets)} node(s) after {time.monotonic() - t0:.1f}s")


def _tail(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "(no error output)"
