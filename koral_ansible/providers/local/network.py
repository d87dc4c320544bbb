"""One podman network per cluster, on a free /24 of :data:`NODE_POOL`.

The gateway (``.1``) is the host's address on the cluster bridge and doubles as the
cluster's "public IP": port forwards (2222..) and the API load balancer (6443) live there.
Node ``idx`` i gets ``.(11 + i)``.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

from koral_ansible.errors import OperationError
from koral_ansible.providers.local.podman import LABEL_HOME, Podman, labels, podman_base

NODE_POOL = IPv4Network("10.213.0.0/16")
SUBNET_PREFIX = 24
FIRST_NODE_HOST = 11
HOST_NETWORKS_DIR = Path("/etc/containers/networks")
PODMAN_DEFAULT_SUBNET = IPv4Network("10.88.0.0/16")


def network_name(cluster: str) -> str:
    return f"koral-{cluster}"


@dataclass(frozen=True)
class NodeNet:
    """A cluster's node subnet and the addresses derived from it."""

    name: str
    subnet: IPv4Network

    @property
    def gateway(self) -> IPv4Address:
        return self.subnet.network_address + 1

    def node_ip(self, idx: int) -> IPv4Address:
        host = FIRST_NODE_HOST + idx
        if idx < 0 or host >= self.subnet.num_addresses - 1:
            raise OperationError(f"node index {idx} does not fit in {self.subnet}")
        return self.subnet.network_address + host


def allocate_subnet(used: Iterable[IPv4Network], pool: IPv4Network = NODE_POOL) -> IPv4Network:
    """The first /24 of ``pool`` that overlaps none of ``used`` (pure)."""
    taken = [u for u in used if u.overlaps(pool)]
    for candidate in pool.subnets(new_prefix=SUBNET_PREFIX):
        if not any(candidate.overlaps(t) for t in taken):
            return candidate
    raise OperationError(f"no free /{SUBNET_PREFIX} left in {pool} for a new cluster network")


def _networks_of(data: Any) -> list[IPv4Network]:
    out: list[IPv4Network] = []
    for item in data if isinstance(data, list) else [data]:
        if not isinstance(item, dict):
            continue
        for sub in item.get("subnets") or []:
            with contextlib.suppress(ValueError, TypeError, KeyError):
                net = ipaddress.ip_network(sub["subnet"], strict=False)
                if isinstance(net, IPv4Network):
                    out.append(net)
    return out


def host_used_networks() -> list[IPv4Network]:
    """IPv4 networks of every route and address on the host, and of the host's own podman networks."""
    used: list[IPv4Network] = [PODMAN_DEFAULT_SUBNET]
    for cmd in (["ip", "-j", "-4", "route", "show", "table", "all"], ["ip", "-j", "-4", "addr"]):
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=10)
        if proc.returncode != 0:
            raise OperationError(f"{' '.join(cmd)} failed: {proc.stderr.strip()[:200]}")
        for entry in json.loads(proc.stdout or "[]"):
            dst = entry.get("dst")
            if dst and dst != "default":
                with contextlib.suppress(ValueError):
                    used.append(IPv4Network(dst, strict=False))
            for addr in entry.get("addr_info", []):
                with contextlib.suppress(ValueError, KeyError):
                    used.append(IPv4Network(f"{addr['local']}/{addr['prefixlen']}", strict=False))
    if HOST_NETWORKS_DIR.is_dir():
        for f in HOST_NETWORKS_DIR.glob("*.json"):
            with contextlib.suppress(OSError, ValueError):
                used += _networks_of(json.loads(f.read_text()))
    return used


def inspect_network(podman: Podman, name: str) -> dict[str, Any] | None:
    proc = podman.run("network", "inspect", name, check=False)
    if proc.returncode != 0:
        return None
    data = json.loads(proc.stdout or "[]")
    return data[0] if isinstance(data, list) and data else None


def koral_used_networks(podman: Podman) -> list[IPv4Network]:
    used: list[IPv4Network] = []
    for net in podman.networks():
        used += _networks_of(net)
    return used


@contextlib.contextmanager
def alloc_lock(podman: Podman) -> Iterator[None]:
    """Serializes subnet allocation among every user of this podman store (hold it from choosing a
    subnet until the network or host address that makes it visible exists)."""
    path = podman_base(podman.paths) / "network.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def ensure_network(podman: Podman, cluster: str, home_id: str, subnet: IPv4Network | None = None) -> NodeNet:
    """The cluster's network: the existing one, or a new one (on ``subnet`` if given, else a free /24)."""
    name = network_name(cluster)
    with alloc_lock(podman):
        existing = inspect_network(podman, name)
        if existing is not None:
            owner = (existing.get("labels") or {}).get(LABEL_HOME)
            if owner != home_id:
                raise OperationError(
                    f"podman network {name} belongs to another koral home; choose another cluster name"
                )
            nets = _networks_of(existing)
            if not nets:
                raise OperationError(f"podman network {name} has no IPv4 subnet")
            return NodeNet(name, nets[0])
        if subnet is None:
            subnet = allocate_subnet([*koral_used_networks(podman), *host_used_networks()])
        net = NodeNet(name, subnet)
        podman.run(
            "network",
            "create",
            "--driver",
            "bridge",
            "--subnet",
            str(subnet),
            "--gateway",
            str(net.gateway),
            "--disable-dns",
            *labels(cluster, home_id),
            name,
        )
        return net


def remove_network(podman: Podman, name: str) -> None:
    podman.run("network", "rm", "-f", name, check=False)


def enable_hairpin(podman: Podman, name: str) -> int:
    """Turn on hairpin mode on every port of the network's bridge; return how many ports.

    With br_netfilter, a node reaching *itself* through the public IP (DNAT back to the port
    the frame came from) is dropped by the bridge unless the port allows hairpin. Ports are
    recreated whenever a container starts, so this runs after every start.
    """
    data = inspect_network(podman, name) or {}
    bridge = data.get("network_interface")
    if not bridge:
        return 0
    count = 0
    for port in sorted(Path(f"/sys/class/net/{bridge}/brif").glob("*")):
        with contextlib.suppress(OSError):
            (port / "hairpin_mode").write_text("1\n")
            count += 1
    return count
